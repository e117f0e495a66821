/* Hand-written C reference kernels for `ensemble-study bench` (ratios package / C).
 *
 * Compiled at run time by ensemble_study.bench with
 *     gcc -O3 -march=native -fopenmp -shared -fPIC
 * and called through ctypes. Two kernels, each the fastest plain C the
 * algorithm allows (restrict pointers, unit-stride inner loops that GCC
 * vectorises for the host, OpenMP over independent work items):
 *
 * softmax_mean_nwgm: for each (outer mask, example) pair, given the
 *   activation a (n units) of the last dropped layer and the scaled weights
 *   sW (n x K), the softmax arithmetic mean over the 2^n inner masks (two
 *   half-tables of products, T1[s] T2[t] / D[s, t]) and the NWGM
 *   (softmax of the mean logits q a sW + b). No variance, no guards.
 *
 * gray_expected_hidden: for each example, the expected last hidden layer
 *   E[relu(b + sum_j m_j c x_j W[j, :])] over the 2^n masks m of the layer
 *   below it, visited in Gray-code order (one rank-one update per mask).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Ablations for scripts/softmax_ablation.py only (off in the bench): with
 * -DES_ABLATE_DIVISION the reciprocals are replaced by the denominators
 * (no division, same loads, stores and multiply-adds); with
 * -DES_ABLATE_CONTRACTION the contraction after the reciprocals is skipped.
 * What each removes from the time is what it costs. */
#ifdef ES_ABLATE_DIVISION
#define RECIP(d) (d)
#else
#define RECIP(d) (1.0 / (d))
#endif

static void mask_probs(int n, double q, double *P) {
    for (int s = 0; s < (1 << n); s++) {
        int c = __builtin_popcount(s);
        P[s] = exp(c * log(q) + (n - c) * log1p(-q));
    }
}

/* The vector width: 8 doubles with AVX-512 (when -march=native finds it on
 * the host), 4 with AVX2/AVX, else 2. vector_lanes() reports it. */
#if defined(__AVX512F__)
#define VL 8
#elif defined(__AVX__)
#define VL 4
#else
#define VL 2
#endif
typedef double vd __attribute__((vector_size(8 * VL)));
typedef double vdu __attribute__((vector_size(8 * VL), aligned(8), may_alias));  /* unaligned */

int vector_lanes(void) { return VL; }

static inline vd vsplat(double x) { return x - (vd){0}; }
static inline vd vload(const double *p) { return *(const vdu *)p; }
static inline void vstore(double *p, vd v) { *(vdu *)p = v; }
/* a * b + c with one rounding: GCC contracts it to a fused multiply-add
 * (-ffp-contract=fast, its default for GNU C) on a host with FMA. */
#define VFMA(a, b, c) ((a) * (b) + (c))
static inline double vsum(vd v) { double s = v[0]; for (int l = 1; l < VL; l++) s += v[l]; return s; }


/* Lane-wise exp as the package computes it (ensemble_study.kernels._simd.vexp):
 * Cody-Waite reduction, a degree-13 Taylor polynomial, two exact powers of two. */
typedef long long vi __attribute__((vector_size(8 * VL)));
static inline vd vsel(vi m, vd a, vd b) { return (vd)((m & (vi)a) | (~m & (vi)b)); }
static const double EXPC[14] = {
    1.6059043836821613e-10, 2.08767569878681e-09, 2.505210838544172e-08, 2.755731922398589e-07,
    2.7557319223985893e-06, 2.48015873015873e-05, 0.0001984126984126984, 0.001388888888888889,
    0.008333333333333333, 0.041666666666666664, 0.16666666666666666, 0.5,
    1.0, 1.0};
static inline vd vexp(vd v) {
    const double magic = 1.5 * 4503599627370496.0;
    vd x = vsel(v < -760.0, vsplat(-760.0), v);
    x = vsel(x > 710.0, vsplat(710.0), x);
    vd t = VFMA(x, vsplat(1.4426950408889634), vsplat(magic));
    vd n = t - magic;
    vd r = VFMA(-n, vsplat(0x1.62e42fee00000p-1), x);
    r = VFMA(-n, vsplat(0x1.a39ef35793c76p-33), r);
    vd p = vsplat(EXPC[0]);
    for (int k = 1; k < 14; k++) p = VFMA(p, r, vsplat(EXPC[k]));
    vi ni = (vi)t - 0x4338000000000000LL, h = ni >> 1;
    vd out = p * (vd)((h + 1023) << 52) * (vd)((ni - h + 1023) << 52);
    return vsel(v != v, v, out);
}

/* out[i] = exp(x[i]) for i < m, VL at a time. */
static void exp_into(double *restrict x, int m) {
    int i = 0;
    for (; i + VL <= m; i += VL) vstore(x + i, vexp(vload(x + i)));
    for (; i < m; i++) x[i] = exp(x[i]);
}

/* The contraction, in the package's order of operations
 * (ensemble_study.kernels.compiled._softmax_contract and _contract):
 * reciprocals 1 / D[s, t] for every (s, t), D = sum_k T1[s, k] T2T[k, t],
 * computed as four independent chains of K dependent fused multiply-adds
 * (4 VL low-half masks at a time); then out[k] = sum_t Tw[k, t] sum_s
 * C[s, k] R[s, t] with C = P1 T1, two classes by four vector accumulators
 * per register block, the high half s innermost. */
static void contract_mean(const double *restrict T1, const double *restrict T2T,
                          const double *restrict T2w, const double *restrict P1, int S1,
                          int S2, int K, double *restrict C, double *restrict R,
                          double *restrict out) {
    const int step = 4 * VL;
    const int blocked = S2 % step == 0;
    for (int s = 0; s < S1; s++) {
        for (int k = 0; k < K; k++) C[s * K + k] = P1[s] * T1[s * K + k];
        for (int t = 0; blocked && t < S2; t += step) {
            vd f = vsplat(T1[s * K]);
            vd d0 = f * vload(T2T + t), d1 = f * vload(T2T + t + VL);
            vd d2 = f * vload(T2T + t + 2 * VL), d3 = f * vload(T2T + t + 3 * VL);
            for (int k = 1; k < K; k++) {
                const double *w = T2T + (size_t)k * S2 + t;
                f = vsplat(T1[s * K + k]);
                d0 = VFMA(f, vload(w), d0);
                d1 = VFMA(f, vload(w + VL), d1);
                d2 = VFMA(f, vload(w + 2 * VL), d2);
                d3 = VFMA(f, vload(w + 3 * VL), d3);
            }
            double *r = R + (size_t)s * S2 + t;
            vstore(r, RECIP(d0));
            vstore(r + VL, RECIP(d1));
            vstore(r + 2 * VL, RECIP(d2));
            vstore(r + 3 * VL, RECIP(d3));
        }
        for (int t = 0; !blocked && t < S2; t += VL) {
            vd d = vsplat(T1[s * K]) * vload(T2T + t);
            for (int k = 1; k < K; k++)
                d = VFMA(vsplat(T1[s * K + k]),
                                              vload(T2T + (size_t)k * S2 + t), d);
            vstore(R + (size_t)s * S2 + t, RECIP(d));
        }
    }
#ifdef ES_ABLATE_CONTRACTION
    for (int k = 0; k < K; k++) out[k] = R[k];  /* keeps the reciprocals live */
    return;
#endif
    if (!blocked) {
        for (int k = 0; k < K; k++) {
            double total = 0.0;
            for (int t = 0; t < S2; t += VL) {
                vd a = vsplat(0.0);
                for (int s = 0; s < S1; s++)
                    a = VFMA(vsplat(C[s * K + k]),
                                                  vload(R + (size_t)s * S2 + t), a);
                total += vsum(a * vload(T2w + (size_t)k * S2 + t));
            }
            out[k] = total;
        }
        return;
    }
    for (int k = 0; k < K; k += 2) {
        int k2 = k + 1 < K ? k + 1 : K - 1;  /* an odd last class is computed twice */
        double total = 0.0, total2 = 0.0;
        for (int t = 0; t < S2; t += step) {
            vd z = vsplat(0.0);
            vd a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
            for (int s = 0; s < S1; s++) {
                const double *r = R + (size_t)s * S2 + t;
                vd r0 = vload(r), r1 = vload(r + VL), r2 = vload(r + 2 * VL), r3 = vload(r + 3 * VL);
                vd c = vsplat(C[s * K + k]);
                a0 = VFMA(c, r0, a0);
                a1 = VFMA(c, r1, a1);
                a2 = VFMA(c, r2, a2);
                a3 = VFMA(c, r3, a3);
                c = vsplat(C[s * K + k2]);
                b0 = VFMA(c, r0, b0);
                b1 = VFMA(c, r1, b1);
                b2 = VFMA(c, r2, b2);
                b3 = VFMA(c, r3, b3);
            }
            const double *w = T2w + (size_t)k * S2 + t;
            total += vsum((a0 * vload(w) + a1 * vload(w + VL))
                          + (a2 * vload(w + 2 * VL) + a3 * vload(w + 3 * VL)));
            w = T2w + (size_t)k2 * S2 + t;
            total2 += vsum((b0 * vload(w) + b1 * vload(w + VL))
                           + (b2 * vload(w + 2 * VL) + b3 * vload(w + 3 * VL)));
        }
        out[k] = total;
        out[k2] = total2;
    }
}

void softmax_mean_nwgm(const double *restrict A, const double *restrict sW,
                       const double *restrict b, double q, int n_pairs, int n, int K,
                       double *restrict mean, double *restrict nwgm) {
    int n1 = n / 2, S1 = 1 << n1, S2 = 1 << (n - n1);
    double *P1 = malloc(sizeof(double) * S1), *P2 = malloc(sizeof(double) * S2);
    mask_probs(n1, q, P1);
    mask_probs(n - n1, q, P2);
    double btop = b[0], *elb = malloc(sizeof(double) * K);
    for (int k = 1; k < K; k++) btop = fmax(btop, b[k]);
    for (int k = 0; k < K; k++) elb[k] = exp(b[k] - btop);
#pragma omp parallel
    {
        double *T1 = malloc(sizeof(double) * S1 * K), *T2 = malloc(sizeof(double) * K * S2);
        double *T2w = malloc(sizeof(double) * K * S2), *C = malloc(sizeof(double) * S1 * K);
        double *R = malloc(sizeof(double) * (size_t)S1 * S2);
        double *E = malloc(sizeof(double) * n * K), *z = malloc(sizeof(double) * K);
#pragma omp for schedule(static)
        for (int p = 0; p < n_pairs; p++) {
            const double *a = A + (size_t)p * n;
            for (int j = 0; j < n; j++) {
                double top = -INFINITY;
                for (int k = 0; k < K; k++) {
                    double v = a[j] * sW[j * K + k];
                    top = v > top ? v : top;
                }
                for (int k = 0; k < K; k++) E[j * K + k] = a[j] * sW[j * K + k] - top;
            }
            exp_into(E, n * K);
            for (int k = 0; k < K; k++) { T1[k] = elb[k]; T2[k * S2] = 1.0; }
            for (int j = 0; j < n1; j++)
                for (int s = 0; s < (1 << j); s++)
                    for (int k = 0; k < K; k++)
                        T1[(s + (1 << j)) * K + k] = T1[s * K + k] * E[j * K + k];
            for (int j = n1; j < n; j++)
                for (int k = 0; k < K; k++)
                    for (int t = 0; t < (1 << (j - n1)); t++)
                        T2[k * S2 + t + (1 << (j - n1))] = T2[k * S2 + t] * E[j * K + k];
            for (int k = 0; k < K; k++)
                for (int t = 0; t < S2; t++) T2w[k * S2 + t] = P2[t] * T2[k * S2 + t];
            if (S2 % VL == 0) {
                contract_mean(T1, T2, T2w, P1, S1, S2, K, C, R, mean + (size_t)p * K);
            } else {  /* fewer low-half masks than lanes */
                for (int k = 0; k < K; k++) {
                    double m = 0.0;
                    for (int t = 0; t < S2; t++) {
                        double g = 0.0;
                        for (int s = 0; s < S1; s++) {
                            double d = T1[s * K] * T2[t];
                            for (int kk = 1; kk < K; kk++) d += T1[s * K + kk] * T2[kk * S2 + t];
                            g += P1[s] * T1[s * K + k] / d;
                        }
                        m += T2w[k * S2 + t] * g;
                    }
                    mean[(size_t)p * K + k] = m;
                }
            }
            double ztop = -INFINITY, total = 0.0;
            for (int k = 0; k < K; k++) {
                double acc = b[k];
                for (int j = 0; j < n; j++) acc += q * a[j] * sW[j * K + k];
                z[k] = acc;
                ztop = acc > ztop ? acc : ztop;
            }
            for (int k = 0; k < K; k++) { z[k] = exp(z[k] - ztop); total += z[k]; }
            for (int k = 0; k < K; k++) nwgm[(size_t)p * K + k] = z[k] / total;
        }
        free(T1); free(T2); free(T2w); free(C); free(R); free(E); free(z);
    }
    free(P1); free(P2); free(elb);
}

void gray_expected_hidden(const double *restrict X, const double *restrict W,
                          const double *restrict b, double q, double c, int n_examples,
                          int n, int h, double *restrict out) {
    long S = 1L << n;
    double wt[65];  /* probability of a mask by how many units it keeps */
    for (int k = 0; k <= n; k++) wt[k] = exp(k * log(q) + (n - k) * log1p(-q));
#pragma omp parallel
    {
        double *z = malloc(sizeof(double) * h), *acc = malloc(sizeof(double) * h);
        double *row = malloc(sizeof(double) * n * h);
#pragma omp for schedule(static)
        for (int e = 0; e < n_examples; e++) {
            const double *x = X + (size_t)e * n;
            for (int j = 0; j < n; j++)
                for (int o = 0; o < h; o++) row[j * h + o] = c * x[j] * W[j * h + o];
            for (int o = 0; o < h; o++) { z[o] = b[o]; acc[o] = 0.0; }
            int kept = 0;
            unsigned long gray = 0;
            for (long i = 0; i < S; i++) {
                if (i > 0) {
                    int j = __builtin_ctzl(i);  /* the bit Gray code i flips */
                    gray ^= 1UL << j;
                    double sign = (gray >> j) & 1 ? 1.0 : -1.0;
                    kept += (int)sign;
                    for (int o = 0; o < h; o++) z[o] += sign * row[j * h + o];
                }
                double w = wt[kept];
                for (int o = 0; o < h; o++) acc[o] += w * (z[o] > 0 ? z[o] : 0.0);
            }
            for (int o = 0; o < h; o++) out[(size_t)e * h + o] = acc[o];
        }
        free(z); free(acc); free(row);
    }
}

#include <omp.h>
void set_threads(int n) { omp_set_num_threads(n); }
