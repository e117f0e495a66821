"""Explicit SIMD vectors of float64 for the numba kernels.

Numba turns LLVM's SLP vectoriser off, and its loop vectoriser keeps
accumulators in memory; register-blocked kernels need a vector type. This
module gives numba one, ``vec`` (``LANES`` doubles: 8 with AVX-512, 4 with
AVX, else 2, read when it is imported from the features numba compiles for:
the host's, or ``NUMBA_CPU_FEATURES``; numba keys its cache by them, so a cached
kernel is rebuilt for other features), and a handful of
intrinsics over it: loads and stores at a flat index of a C-contiguous
float64 array, splat, add/sub/mul/div, fused multiply-add, max, horizontal
sum, lane access, an exp, and the hidden activations tanh and the logistic
sigmoid built on it.

``vexp`` is Cody-Waite range reduction and a degree-13 Taylor polynomial
(truncation below 5e-18 on ``|r| <= ln2/2``), scaled by two exact powers of
two, so subnormal results round once and large arguments give 0 or inf;
NaN stays NaN. Its error is about 1 ulp.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model


def host_lanes() -> int:
    """Doubles per vector register of the CPU numba compiles for.

    That is the host's (llvmlite's host CPU features), unless numba is told to
    compile for other features (``NUMBA_CPU_NAME`` with ``NUMBA_CPU_FEATURES``,
    numba's own switches): then theirs, so that, for example, an AVX-512 host can
    build and test the 4-lane AVX2 kernels (numba keys its cache by those features).
    """
    from numba.core import config

    if config.CPU_FEATURES is not None:
        features = {f[1:]: f[0] == "+" for f in config.CPU_FEATURES.split(",") if f}
    else:
        features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 8
    if features.get("avx"):
        return 4
    return 2


LANES = host_lanes()
_FLAGS = ("contract", "arcp", "nsz")
_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_VT = ir.VectorType(_F64, LANES)
_VI = ir.VectorType(_I64, LANES)


class VecType(types.Type):
    def __init__(self):
        super().__init__(name=f"float64x{LANES}")


vec = VecType()


@register_model(VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VT)


def _const(x):
    return ir.Constant(_VT, [float(x)] * LANES)


def _pointer(context, builder, aryty, ary, idx):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [idx]), _VT.as_pointer())


@intrinsic
def vload(typingctx, arr, i):
    """``arr.flat[i:i + LANES]`` (C-contiguous float64 array)."""
    def codegen(context, builder, sig, args):
        return builder.load(_pointer(context, builder, sig.args[0], args[0], args[1]), align=8)
    return vec(arr, i), codegen


@intrinsic
def vstore(typingctx, arr, i, v):
    """``arr.flat[i:i + LANES] = v``."""
    def codegen(context, builder, sig, args):
        builder.store(args[2], _pointer(context, builder, sig.args[0], args[0], args[1]),
                      align=8)
        return context.get_dummy_value()
    return types.void(arr, i, vec), codegen


def _splat(builder, x):
    v = builder.insert_element(ir.Constant(_VT, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    return builder.shuffle_vector(v, ir.Constant(_VT, ir.Undefined), zeros)


@intrinsic
def vsplat(typingctx, x):
    """Every lane ``x``."""
    def codegen(context, builder, sig, args):
        return _splat(builder, args[0])
    return vec(types.float64), codegen


def _binary(name):
    @intrinsic
    def op(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1], flags=_FLAGS)
        return vec(vec, vec), codegen
    return op


vadd, vsub, vmul, vdiv = (_binary(n) for n in ("fadd", "fsub", "fmul", "fdiv"))


def _call(builder, name, args, ty=_VT):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * len(args)),
                                        f"llvm.{name}.v{LANES}f64")
    return builder.call(fn, args)


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c``, one rounding."""
    def codegen(context, builder, sig, args):
        return _call(builder, "fma", args)
    return vec(vec, vec, vec), codegen


@intrinsic
def vmax(typingctx, a, b):
    """Lane-wise maximum (``b`` where ``a`` is NaN)."""
    def codegen(context, builder, sig, args):
        return _call(builder, "maxnum", args)
    return vec(vec, vec), codegen


@intrinsic
def vsum(typingctx, a):
    """The sum of the lanes, in lane order."""
    def codegen(context, builder, sig, args):
        s = builder.extract_element(args[0], ir.Constant(ir.IntType(32), 0))
        for i in range(1, LANES):
            s = builder.fadd(s, builder.extract_element(args[0], ir.Constant(ir.IntType(32), i)))
        return s
    return types.float64(vec), codegen


@intrinsic
def vget(typingctx, a, i):
    """Lane ``i``."""
    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return types.float64(vec, i), codegen


_MAGIC = 1.5 * 2.0**52  # adding it rounds to an integer held in the low mantissa bits
_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")


def _pow2(builder, h):
    """``2**h`` for integer-valued ``h`` in [-1022, 1023]."""
    bits = builder.bitcast(builder.fadd(h, _const(_MAGIC)), _VI)
    bits = builder.sub(bits, ir.Constant(_VI, [0x4338000000000000] * LANES))
    bits = builder.add(bits, ir.Constant(_VI, [1023] * LANES))
    return builder.bitcast(builder.shl(bits, ir.Constant(_VI, [52] * LANES)), _VT)


def _exp(builder, v):
    x = _call(builder, "minnum", [_call(builder, "maxnum", [v, _const(-760.0)]), _const(710.0)])
    t = _call(builder, "fma", [x, _const(1 / math.log(2)), _const(_MAGIC)])
    n = builder.fsub(t, _const(_MAGIC))
    neg = builder.fneg(n)
    r = _call(builder, "fma", [neg, _const(_LN2_HI), x])
    r = _call(builder, "fma", [neg, _const(_LN2_LO), r])
    p = _const(1 / math.factorial(13))
    for k in range(12, -1, -1):
        p = _call(builder, "fma", [p, r, _const(1 / math.factorial(k))])
    h = _call(builder, "floor", [builder.fmul(n, _const(0.5))])
    out = builder.fmul(builder.fmul(p, _pow2(builder, h)), _pow2(builder, builder.fsub(n, h)))
    return builder.select(builder.fcmp_unordered("uno", v, v), v, out)


@intrinsic
def vexp(typingctx, a):
    """Lane-wise ``exp`` (about 1 ulp; 0 below -745, inf above 709.8, NaN kept)."""
    def codegen(context, builder, sig, args):
        return _exp(builder, args[0])
    return vec(vec), codegen


@intrinsic
def vsigmoid(typingctx, a):
    """Lane-wise logistic function, as the scalar kernels compute it: ``1 / (1 + e)``
    for ``a >= 0`` and ``e / (1 + e)`` below, ``e = exp(-|a|)`` (no overflow)."""
    def codegen(context, builder, sig, args):
        v = args[0]
        e = _exp(builder, builder.fneg(_call(builder, "fabs", [v])))
        num = builder.select(builder.fcmp_ordered(">=", v, _const(0.0)), _const(1.0), e)
        return builder.fdiv(num, builder.fadd(e, _const(1.0)))
    return vec(vec), codegen


def _tanh_series(terms: int) -> list[float]:
    """Taylor coefficients of ``tanh(x) / x`` in powers of ``x^2`` (from Bernoulli numbers)."""
    from fractions import Fraction

    B = [Fraction(1)]
    for n in range(1, 2 * terms + 1):
        B.append(-sum(math.comb(n + 1, k) * B[k] for k in range(n)) / (n + 1))
    return [float(Fraction(4**n * (4**n - 1)) * B[2 * n] / math.factorial(2 * n))
            for n in range(1, terms + 1)]


_TANH_CUT = 0.25
_TANH_SERIES = _tanh_series(11)  # the first omitted term is below 3e-18 relative at 0.25


@intrinsic
def vtanh(typingctx, a):
    """Lane-wise ``tanh``: the Taylor series below ``|a| = 0.25``, ``1 - 2 / (1 +
    exp(2 |a|))`` above, with ``a``'s sign (NaN kept). Within a few ulp of
    libm's (5 at worst, just above the cut, where the subtraction loses two
    bits; the tests hold it to 8)."""
    def codegen(context, builder, sig, args):
        v = args[0]
        x = _call(builder, "fabs", [v])
        x2 = builder.fmul(x, x)
        p = _const(_TANH_SERIES[-1])
        for c in reversed(_TANH_SERIES[:-1]):
            p = _call(builder, "fma", [p, x2, _const(c)])
        small = builder.fmul(p, x)
        big = builder.fsub(_const(1.0), builder.fdiv(
            _const(2.0), builder.fadd(_exp(builder, builder.fadd(x, x)), _const(1.0))))
        t = builder.select(builder.fcmp_ordered("<", x, _const(_TANH_CUT)), small, big)
        return _call(builder, "copysign", [t, v])
    return vec(vec), codegen
