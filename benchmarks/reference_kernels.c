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

static void mask_probs(int n, double q, double *P) {
    for (int s = 0; s < (1 << n); s++) {
        int c = __builtin_popcount(s);
        P[s] = exp(c * log(q) + (n - c) * log1p(-q));
    }
}

/* The register-blocked micro-kernel for K = 10 classes: VL high-half masks
 * in the lanes of one vector (VL from the compiler's target: 8 with
 * AVX-512, 4 with AVX2), every low-half mask in turn, the 10 class
 * accumulators in registers. T1 is (S1 x K), T2 (K x S2). */
#if defined(__AVX512F__)
#define VL 8
#elif defined(__AVX__)
#define VL 4
#else
#define VL 2
#endif
typedef double vd __attribute__((vector_size(8 * VL)));

static void blocked10(const double *restrict T1, const double *restrict T2,
                      const double *restrict P1, const double *restrict P2, int S1, int S2,
                      double *restrict out) {
    enum { KK = 10 };
    double T1s[KK][VL] __attribute__((aligned(64)));
    double res[KK] = {0};
    double T2w[S2 * KK];
    for (int t = 0; t < S2; t++)
        for (int k = 0; k < KK; k++) T2w[t * KK + k] = P2[t] * T2[k * S2 + t];
    for (int s0 = 0; s0 < S1; s0 += VL) {
        for (int k = 0; k < KK; k++)
            for (int l = 0; l < VL; l++) T1s[k][l] = T1[(s0 + l) * KK + k];
        vd a[KK], x[KK];
        for (int k = 0; k < KK; k++) { a[k] = (vd){0}; memcpy(&x[k], T1s[k], sizeof(vd)); }
        for (int t = 0; t < S2; t++) {
            vd d = x[0] * T2[t];
            for (int k = 1; k < KK; k++) d += x[k] * T2[k * S2 + t];
            vd r = 1.0 / d;
            for (int k = 0; k < KK; k++) a[k] += r * T2w[t * KK + k];
        }
        for (int k = 0; k < KK; k++)
            for (int l = 0; l < VL; l++) res[k] += P1[s0 + l] * x[k][l] * a[k][l];
    }
    for (int k = 0; k < KK; k++) out[k] = res[k];
}

void softmax_mean_nwgm(const double *restrict A, const double *restrict sW,
                       const double *restrict b, double q, int n_pairs, int n, int K,
                       double *restrict mean, double *restrict nwgm) {
    int n1 = n / 2, S1 = 1 << n1, S2 = 1 << (n - n1);
    double *P1 = malloc(sizeof(double) * S1), *P2 = malloc(sizeof(double) * S2);
    mask_probs(n1, q, P1);
    mask_probs(n - n1, q, P2);
#pragma omp parallel
    {
        double *T1 = malloc(sizeof(double) * S1 * K), *T2 = malloc(sizeof(double) * K * S2);
        double *G = malloc(sizeof(double) * K * S2), *R = malloc(sizeof(double) * S2);
        double *E = malloc(sizeof(double) * n * K), *z = malloc(sizeof(double) * K);
#pragma omp for schedule(static)
        for (int p = 0; p < n_pairs; p++) {
            const double *a = A + (size_t)p * n;
            double btop = b[0];
            for (int k = 1; k < K; k++) btop = fmax(btop, b[k]);
            for (int j = 0; j < n; j++) {
                double top = -INFINITY;
                for (int k = 0; k < K; k++) top = fmax(top, a[j] * sW[j * K + k]);
                for (int k = 0; k < K; k++) E[j * K + k] = exp(a[j] * sW[j * K + k] - top);
            }
            for (int k = 0; k < K; k++) { T1[k] = exp(b[k] - btop); T2[k * S2] = 1.0; }
            for (int j = 0; j < n1; j++)
                for (int s = 0; s < (1 << j); s++)
                    for (int k = 0; k < K; k++)
                        T1[(s + (1 << j)) * K + k] = T1[s * K + k] * E[j * K + k];
            for (int j = n1; j < n; j++)
                for (int k = 0; k < K; k++)
                    for (int t = 0; t < (1 << (j - n1)); t++)
                        T2[k * S2 + t + (1 << (j - n1))] = T2[k * S2 + t] * E[j * K + k];
            if (K == 10 && S1 % VL == 0) {
                blocked10(T1, T2, P1, P2, S1, S2, mean + (size_t)p * K);
            } else {
            memset(G, 0, sizeof(double) * K * S2);
            for (int s = 0; s < S1; s++) {
                for (int t = 0; t < S2; t++) R[t] = T1[s * K] * T2[t];
                for (int k = 1; k < K; k++) {
                    double f = T1[s * K + k];
                    for (int t = 0; t < S2; t++) R[t] += f * T2[k * S2 + t];
                }
                for (int t = 0; t < S2; t++) R[t] = 1.0 / R[t];
                for (int k = 0; k < K; k++) {
                    double f = P1[s] * T1[s * K + k];
                    for (int t = 0; t < S2; t++) G[k * S2 + t] += f * R[t];
                }
            }
            for (int k = 0; k < K; k++) {
                double m = 0.0;
                for (int t = 0; t < S2; t++) m += P2[t] * T2[k * S2 + t] * G[k * S2 + t];
                mean[(size_t)p * K + k] = m;
            }
            }
            double ztop = -INFINITY, total = 0.0;
            for (int k = 0; k < K; k++) {
                double acc = b[k];
                for (int j = 0; j < n; j++) acc += q * a[j] * sW[j * K + k];
                z[k] = acc;
                ztop = fmax(ztop, acc);
            }
            for (int k = 0; k < K; k++) { z[k] = exp(z[k] - ztop); total += z[k]; }
            for (int k = 0; k < K; k++) nwgm[(size_t)p * K + k] = z[k] / total;
        }
        free(T1); free(T2); free(G); free(R); free(E); free(z);
    }
    free(P1); free(P2);
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
