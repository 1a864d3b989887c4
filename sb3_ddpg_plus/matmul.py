"""
Matrix products in the faster orientation for small networks on one CPU thread.

One-thread MKL is 2-3x slower for products with a few (2-16) output columns than for the transposed product: a
256 x 6 actor output layer, the 64 x 3 weight gradient of a Pendulum input layer, the gradient of 6 action columns.
The transposed product gives the same values (it is the same sum of products) as a transposed view, which
elementwise operations and further products accept as is. One output column goes to a fast matrix-vector kernel
already.
"""

import torch as th


def is_skinny(rows: int, columns: int) -> bool:
    """
    :param rows: Rows of the product
    :param columns: Columns of the product
    :return: Whether ``rows x columns`` is faster computed as the transpose of ``columns x rows``
    """
    return 2 <= columns <= 16 and rows >= 4 * columns


def skinny_rows(columns: int) -> float:
    """
    :param columns: Columns of a product (a layer's output features)
    :return: The fewest rows from which ``is_skinny(rows, columns)`` holds (infinite when it never does), so that
        a loop over layers decides the orientation with one comparison
    """
    return 4 * columns if 2 <= columns <= 16 else float("inf")


def linear(inputs: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
    """
    :param inputs: Batch of inputs, ``(batch, in_features)``
    :param weight: ``(out_features, in_features)``
    :param bias: ``(out_features,)`` or ``None``
    :return: ``inputs @ weight.T + bias`` (``F.linear``), in the faster orientation
    """
    if bias is not None and inputs.dim() == 2 and is_skinny(inputs.shape[0], weight.shape[0]):
        return th.addmm(bias.unsqueeze(1), weight, inputs.t()).t()
    return th.nn.functional.linear(inputs, weight, bias)


def matmul(left: th.Tensor, right: th.Tensor) -> th.Tensor:
    """
    :param left: ``(rows, inner)``
    :param right: ``(inner, columns)``
    :return: ``left @ right``, in the faster orientation
    """
    if left.shape[1] == 1:
        # An outer product (e.g. back through a Q-network's one-unit output layer): one product per element,
        # so broadcasting gives the same values without a matrix kernel
        return left * right
    if is_skinny(left.shape[0], right.shape[1]):
        return th.mm(right.t(), left.t()).t()
    return left.mm(right)
