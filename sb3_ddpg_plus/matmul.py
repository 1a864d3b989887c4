"""
Matrix products in the faster orientation for small networks on one CPU thread.

One-thread MKL is 2-3x slower for products with a few (2-16) output columns than for the transposed product: a
256 x 6 actor output layer, the 64 x 3 weight gradient of a Pendulum input layer, the gradient of 6 action columns.
The transposed product gives the same values (it is the same sum of products) as a transposed view, which
elementwise operations and further products accept as is. One output column goes to a fast matrix-vector kernel
already.

For large layers the better orientation depends on the shape and the BLAS (one-thread MKL on this project's AMD EPYC
ran a 256 x 400 @ 400 x 300 product a few percent faster transposed, a 256 x 256 @ 256 x 400 one slower):
:func:`transposed_linear` times both once per shape and process, and takes the transposed one only when it is clearly
faster and gives the same bits, so that a seeded run trains the same whatever the timings.
"""

import time

import torch as th


def is_skinny(rows: int, columns: int) -> bool:
    """
    :param rows: Rows of the product
    :param columns: Columns of the product
    :return: Whether ``rows x columns`` is faster computed as the transpose of ``columns x rows``
    """
    return 2 <= columns <= 16 and rows >= 4 * columns


#: Products under this many FLOPs keep the fixed rule (a 64 x 64 layer's ~2 MFLOP): timing noise would exceed the gain
PROBE_MIN_FLOPS = 8_000_000
# (rows, in_features, out_features) -> whether that layer's product is computed transposed (probed once per process)
_probed: dict[tuple[int, int, int], bool] = {}


def transposed_linear(rows: int, in_features: int, out_features: int) -> bool:
    """
    :param rows: Rows of the layer's input (the batch)
    :param in_features: The layer's input features
    :param out_features: The layer's output features
    :return: Whether ``F.linear`` is computed as ``addmm(bias, weight, inputs.T).T`` for this shape: always for skinny
        products (:func:`is_skinny`), never for small ones, as a one-time probe finds for large ones
    """
    if is_skinny(rows, out_features):
        return True
    if 2 * rows * in_features * out_features < PROBE_MIN_FLOPS:
        return False
    key = (rows, in_features, out_features)
    choice = _probed.get(key)
    if choice is None:
        choice = _probed[key] = _probe_transposed(rows, in_features, out_features)
    return choice


def _probe_transposed(rows: int, in_features: int, out_features: int, rounds: int = 10) -> bool:
    """
    :return: Whether the transposed product is at least 5% faster than ``F.linear`` on this shape (least CPU time of
        ``rounds`` timings each, after a warm-up, the order alternating: the second of two products runs faster) and
        equal to it bit for bit. The inputs come from a private generator: torch's global random stream, which seeds
        training, is left as it was.
    """
    generator = th.Generator().manual_seed(0)
    inputs = th.randn(rows, in_features, generator=generator)
    weight = th.randn(out_features, in_features, generator=generator)
    bias = th.randn(out_features, generator=generator)

    def product(transposed: bool) -> th.Tensor:
        if transposed:
            return th.addmm(bias.unsqueeze(1), weight, inputs.t()).t()
        return th.nn.functional.linear(inputs, weight, bias)

    with th.no_grad():
        if not th.equal(product(False), product(True)):
            # Another summation order: never chosen, so that seeded runs do not depend on timings
            return False
        for transposed in (False, True):  # warm-up
            product(transposed)
        best = {False: float("inf"), True: float("inf")}
        for idx in range(rounds):
            for transposed in (False, True) if idx % 2 == 0 else (True, False):
                # CPU time of the process: a time slice lost to another process does not count
                start = time.process_time()
                product(transposed)
                best[transposed] = min(best[transposed], time.process_time() - start)
    return best[True] < 0.95 * best[False]


def linear(inputs: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
    """
    :param inputs: Batch of inputs, ``(batch, in_features)``
    :param weight: ``(out_features, in_features)``
    :param bias: ``(out_features,)`` or ``None``
    :return: ``inputs @ weight.T + bias`` (``F.linear``), in the faster orientation
    """
    # The fixed rule only, not transposed_linear's probe: this also runs on GPUs and under autograd, whose backward
    # products the probe's bit-for-bit check of the forward product does not cover
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
