/* Template part of layers_impl.h: the matrix products every layer runs on, and the data moves
 * between their layouts. Register-blocked GEMM tiles (outer products of A's broadcasts and B's
 * vectors), the dot-product GEMM for a B read by rows, the ordered lane sum, and the planar <->
 * channels-last relayout. They live together because each layer's kernel is one of these products
 * over a layout chosen for it; every product sums each output element in one fixed order, whatever
 * tile or thread computes it, which is what keeps the layers bit-identical across thread counts. */

/* ---- GEMM: C (m, n) = [C +] A (m, kk) B (kk, n) ----------------------------------------------
 * A is read through strides (element (i, l) at A[i ars + l als]), so a transposed operand costs
 * nothing; B and C have unit column stride. Single-threaded: callers split the work. Each element
 * of C is one sequential sum over l whatever the tile it falls in, so any split of rows or
 * columns gives the same bits.
 * gemm_shifted reads B through two tables of offsets instead: vector t of row l (VL columns) at
 * B + boff[l] + voff[t]. Its rows then overlap, as the taps of a stride-1 convolution read one
 * padded image (conv2d_forward). gemm_ashifted reads A so: element (i, l) at A[arow[i] + acol[l]]. */

/* mr, nv and whether the tables are NULL are constants at every call: the MR x NV tile stays in
 * registers. */
LOSSK_INLINE void FN(gemm_tile)(const int mr, const int nv, int64_t kk, const T *A, int64_t ars, int64_t als,
                                const int64_t *arow, const int64_t *acol, const T *B, int64_t ldb,
                                const int64_t *boff, const int64_t *voff, T *C, int64_t ldc, int acc)
{
    VEC c[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            c[i][v] = acc ? *(const VEC *)(C + i * ldc + v * VL) : (VEC){0};
    const T *Bv[NV], *Ar[MR];
#pragma GCC unroll 8
    for (int v = 0; v < nv; v++)
        Bv[v] = voff ? B + voff[v] : B + v * VL;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
        Ar[i] = arow ? A + arow[i] : NULL;
    for (int64_t l = 0; l < kk; l++, A += als) {
        const int64_t row = boff ? boff[l] : l * ldb, col = acol ? acol[l] : 0;
        VEC b[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            b[v] = *(const VEC *)(Bv[v] + row);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                c[i][v] += (arow ? Ar[i][col] : A[i * ars]) * b[v];
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            *(VEC *)(C + i * ldc + v * VL) = c[i][v];
}

/* Every tile shape is its own function, so that register allocation sees one small loop nest;
 * tile_ for gemm, stile_ (B through the tables) for gemm_shifted, atile_ (A through the tables)
 * for gemm_ashifted. */
#define TILE_VARIANT(name, mr, nv, A_TABLES, B_TABLES) \
    __attribute__((noinline)) static void FN(name##_##mr##_##nv)(int64_t kk, const T *A, int64_t ars, int64_t als, \
                                                                  const int64_t *arow, const int64_t *acol, \
                                                                  const T *B, int64_t ldb, const int64_t *boff, \
                                                                  const int64_t *voff, T *C, int64_t ldc, int acc) \
    { \
        (void)arow; (void)acol; (void)boff; (void)voff; \
        FN(gemm_tile)(mr < MR ? mr : MR, nv < NV ? nv : NV, kk, A, ars, als, A_TABLES, B, ldb, B_TABLES, C, ldc, \
                      acc); \
    }
#define TILE(mr, nv) \
    TILE_VARIANT(tile, mr, nv, NULL COMMA NULL, NULL COMMA NULL) \
    TILE_VARIANT(stile, mr, nv, NULL COMMA NULL, boff COMMA voff) \
    TILE_VARIANT(atile, mr, nv, arow COMMA acol, NULL COMMA NULL)
#define COMMA ,
#define TILES(nv) TILE(1, nv) TILE(2, nv) TILE(3, nv) TILE(4, nv) TILE(5, nv) TILE(6, nv)
TILES(1) TILES(2) TILES(3) TILES(4)
#undef TILES
#undef COMMA
#undef TILE
#undef TILE_VARIANT

typedef void (*FN(tile_fn))(int64_t, const T *, int64_t, int64_t, const int64_t *, const int64_t *, const T *,
                            int64_t, const int64_t *, const int64_t *, T *, int64_t, int);
#define ROW(t, nv) {FN(t##_1_##nv), FN(t##_2_##nv), FN(t##_3_##nv), FN(t##_4_##nv), FN(t##_5_##nv), FN(t##_6_##nv)}
static const FN(tile_fn) FN(tiles)[4][6] = {ROW(tile, 1), ROW(tile, 2), ROW(tile, 3), ROW(tile, 4)};
static const FN(tile_fn) FN(stiles)[4][6] = {ROW(stile, 1), ROW(stile, 2), ROW(stile, 3), ROW(stile, 4)};
static const FN(tile_fn) FN(atiles)[4][6] = {ROW(atile, 1), ROW(atile, 2), ROW(atile, 3), ROW(atile, 4)};
#undef ROW

/* Columns past the last whole vector, rem < VL of them, kk <= GEMM_KC: B's are copied into a
 * zero-padded panel of whole vectors and C's go through a tile of them, so they take the vector
 * tiles too, with the same bits as in a whole vector. */
static void FN(gemm_padded)(int64_t m, int64_t rem, int64_t kk, const T *A, int64_t ars, int64_t als,
                            const T *B, int64_t ldb, T *C, int64_t ldc, int acc)
{
    enum { RB = 8 * MR };
    _Alignas(64) T panel[GEMM_KC * VL], tile[RB * VL];
    for (int64_t l = 0; l < kk; l++)
        for (int64_t j = 0; j < VL; j++)
            panel[l * VL + j] = j < rem ? B[l * ldb + j] : 0;
    for (int64_t i0 = 0; i0 < m; i0 += RB) {
        const int64_t rb = lossk_min64(RB, m - i0);
        for (int64_t i = 0; i < rb; i++)
            for (int64_t j = 0; j < VL; j++)
                tile[i * VL + j] = acc && j < rem ? C[(i0 + i) * ldc + j] : 0;
        for (int64_t i = 0; i < rb; i += MR)
            FN(tiles)[0][lossk_min64(MR, rb - i) - 1](kk, A + (i0 + i) * ars, ars, als, NULL, NULL, panel, VL, NULL,
                                                      NULL, tile + i * VL, VL, 1);
        for (int64_t i = 0; i < rb; i++)
            for (int64_t j = 0; j < rem; j++)
                C[(i0 + i) * ldc + j] = tile[i * VL + j];
    }
}

/* The sum runs in chunks of GEMM_KC, each resuming from C, so that the chunk of B one column tile
 * reads stays in L1 across the row tiles; every element is still one sequential sum. */
static void FN(gemm)(int64_t m, int64_t n, int64_t kk, const T *A, int64_t ars, int64_t als,
                     const T *B, int64_t ldb, T *C, int64_t ldc, int acc)
{
    int64_t l0 = 0;
    do { /* once at least: with kk = 0, C = [C +] 0 */
        const int64_t kc = lossk_min64(GEMM_KC, kk - l0);
        const T *Al = A + l0 * als, *Bl = B + l0 * ldb;
        const int accl = acc || l0 > 0;
        int64_t j = 0;
        while (j + VL <= n) {
            const int64_t nv = lossk_min64(NV, (n - j) / VL);
            for (int64_t i = 0; i < m; i += MR)
                FN(tiles)[nv - 1][lossk_min64(MR, m - i) - 1](kc, Al + i * ars, ars, als, NULL, NULL, Bl + j, ldb,
                                                               NULL, NULL, C + i * ldc + j, ldc, accl);
            j += nv * VL;
        }
        if (j < n)
            FN(gemm_padded)(m, n - j, kc, Al, ars, als, Bl + j, ldb, C + j, ldc, accl);
        l0 += GEMM_KC;
    } while (l0 < kk);
}

/* gemm for a tall product (m much larger than n, B a few hundred KiB): each row tile of A runs
 * every column tile over the whole sum in registers, so that A and C are each streamed once from
 * memory where gemm streams A once per column tile and C once per GEMM_KC rows of B. Same bits. */
static void FN(gemm_tall)(int64_t m, int64_t n, int64_t kk, const T *A, int64_t ars, int64_t als,
                          const T *B, int64_t ldb, T *C, int64_t ldc, int acc)
{
    for (int64_t i = 0; i < m; i += MR) {
        const int64_t mr = lossk_min64(MR, m - i);
        int64_t j = 0;
        while (j + VL <= n) {
            const int64_t nv = lossk_min64(NV, (n - j) / VL);
            FN(tiles)[nv - 1][mr - 1](kk, A + i * ars, ars, als, NULL, NULL, B + j, ldb, NULL, NULL, C + i * ldc + j,
                                      ldc, acc);
            j += nv * VL;
        }
        for (int64_t l0 = 0; j < n && (l0 == 0 || l0 < kk); l0 += GEMM_KC)
            FN(gemm_padded)(mr, n - j, lossk_min64(GEMM_KC, kk - l0), A + i * ars + l0 * als, ars, als, B + l0 * ldb + j,
                            ldb, C + i * ldc + j, ldc, acc || l0 > 0);
    }
}

/* C (m, nvec VL) = [C +] A (m, kk) B, vector t of B's row l at B + boff[l] + voff[t] */
static void FN(gemm_shifted)(int64_t m, int64_t nvec, int64_t kk, const T *A, int64_t ars, int64_t als, const T *B,
                             const int64_t *boff, const int64_t *voff, T *C, int64_t ldc, int acc)
{
    for (int64_t t = 0; t < nvec; t += NV) {
        const int64_t nv = lossk_min64(NV, nvec - t);
        for (int64_t i = 0; i < m; i += MR)
            FN(stiles)[nv - 1][lossk_min64(MR, m - i) - 1](kk, A + i * ars, ars, als, NULL, NULL, B, 0, boff,
                                                            voff + t, C + i * ldc + t * VL, ldc, acc);
    }
}

/* C (m, n) = [C +] A B (kk, n), n a multiple of VL, A's element (i, l) at A[arow[i] + acol[l]].
 * n is a few vectors of channels: split into column tiles of nearly equal width, as a tile one
 * vector wide does MR broadcasts for MR multiplies. */
static void FN(gemm_ashifted)(int64_t m, int64_t n, int64_t kk, const T *A, const int64_t *arow,
                              const int64_t *acol, const T *B, int64_t ldb, T *C, int64_t ldc, int acc)
{
    const int64_t nvec = n / VL, tiles = (nvec + NV - 1) / NV;
    for (int64_t t = 0, j = 0; t < tiles; t++) {
        const int64_t nv = nvec * (t + 1) / tiles - nvec * t / tiles;
        for (int64_t i = 0; i < m; i += MR)
            FN(atiles)[nv - 1][lossk_min64(MR, m - i) - 1](kk, A, 0, 0, arow + i, acol, B + j, ldb, NULL, NULL,
                                                            C + i * ldc + j, ldc, acc);
        j += nv * VL;
    }
}

/* ---- Dot-product GEMM: C (m, n) = [C +] A (m, kk) B (n, kk)^T -----------------------------------
 * Rows of A and B both run along the reduction, so each element of C is a dot product: summed in
 * VL lanes (element l into lane l % VL), the lanes then added by halves, whatever the tile.
 * With tables (kk a multiple of VL), row j of B starts at B + boff[j], and its elements
 * [t VL, t VL + VL) are at voff[t] from there: the taps of a stride-1 convolution reading its padded
 * image (conv2d_backward_weight). With rows of nvr vectors as well (nvr > 0), the last vector of
 * every nvr keeps only its first `lanes` lanes of B, the rest zeroed: an output row that is not
 * whole vectors, whose lanes past it read image pixels (A is -0 there, and -0 inf would be nan). */

LOSSK_INLINE void FN(nt_step)(const int mr, const int nr, const T *A, int64_t lda, int64_t l, const T *const *Bj,
                              int64_t at, const int masked, FN(ivec) mask, VEC c[NT_MR][NT_NR])
{
    VEC a[NT_MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
        a[i] = *(const VEC *)(A + i * lda + l);
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) {
        VEC b = *(const VEC *)(Bj[j] + at);
        if (masked)
            b = (VEC)((FN(ivec))b & mask);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++)
            c[i][j] += a[i] * b;
    }
}

LOSSK_INLINE void FN(gemm_nt_tile)(const int mr, const int nr, int64_t kk, const T *A, int64_t lda, const T *B,
                                   int64_t ldb, const int64_t *boff, const int64_t *voff, const int masked,
                                   int64_t nvr, int64_t lanes, T *C, int64_t ldc, int acc)
{
    const T *Bj[NT_NR];
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        Bj[j] = boff ? B + boff[j] : B + j * ldb;
    VEC c[NT_MR][NT_NR]; /* from -0, which adding leaves every sum as it is: an all -0 dot product stays -0 */
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++)
            c[i][j] = -(VEC){0};
    FN(ivec) mask = {0};
    for (int64_t t = 0; t < VL; t++)
        mask[t] = t < lanes ? -1 : 0;
    int64_t l = 0;
    if (masked)
        for (const int64_t *v = voff; l < kk; v += nvr) {
            for (int64_t t = 0; t + 1 < nvr; t++, l += VL)
                FN(nt_step)(mr, nr, A, lda, l, Bj, v[t], 0, mask, c);
            FN(nt_step)(mr, nr, A, lda, l, Bj, v[nvr - 1], 1, mask, c);
            l += VL;
        }
    else
        for (; l + VL <= kk; l += VL)
            FN(nt_step)(mr, nr, A, lda, l, Bj, voff ? voff[l / VL] : l, 0, mask, c);
    if (l < kk) { /* the last part-vector, from copies padded with 0 and -0: adding 0 (-0) leaves every
                   * lane's sum as it is, -0 included */
        _Alignas(64) T ta[NT_MR][VL] = {{0}}, tb[NT_NR][VL];
        for (int j = 0; j < nr; j++)
            for (int64_t t = 0; t < VL; t++)
                tb[j][t] = -(T)0;
        for (int i = 0; i < mr; i++)
            for (int64_t t = 0; l + t < kk; t++)
                ta[i][t] = A[i * lda + l + t];
        for (int j = 0; j < nr; j++)
            for (int64_t t = 0; l + t < kk; t++)
                tb[j][t] = Bj[j][l + t];
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++)
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++)
                c[i][j] += *(const VEC *)ta[i] * *(const VEC *)tb[j];
    }
    FN(ivec) swap[8]; /* lanes added by halves: log2 VL shuffle-adds, in a fixed order */
    for (int round = 0; round < __builtin_ctzll(VL); round++)
        for (int64_t t = 0; t < VL; t++)
            swap[round][t] = (TI)(t ^ (VL >> (round + 1)));
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            VEC v = c[i][j];
            for (int round = 0; round < __builtin_ctzll(VL); round++)
                v += __builtin_shuffle(v, swap[round]);
            C[i * ldc + j] = acc ? C[i * ldc + j] + v[0] : v[0];
        }
}

/* nt_tile_ with a row stride, snt_tile_ with the tables, mnt_tile_ with the tables and rows */
#define TILE_VARIANT(name, mr, nr, TABLES, masked) \
    __attribute__((noinline)) static void FN(name##_##mr##_##nr)(int64_t kk, const T *A, int64_t lda, const T *B, \
                                                                  int64_t ldb, const int64_t *boff, \
                                                                  const int64_t *voff, int64_t nvr, int64_t lanes, \
                                                                  T *C, int64_t ldc, int acc) \
    { \
        (void)boff; (void)voff; \
        FN(gemm_nt_tile)(mr < NT_MR ? mr : NT_MR, nr < NT_NR ? nr : NT_NR, kk, A, lda, B, ldb, TABLES, masked, nvr, \
                         lanes, C, ldc, acc); \
    }
#define TILE(mr, nr) \
    TILE_VARIANT(nt_tile, mr, nr, NULL COMMA NULL, 0) \
    TILE_VARIANT(snt_tile, mr, nr, boff COMMA voff, 0) \
    TILE_VARIANT(mnt_tile, mr, nr, boff COMMA voff, 1)
#define COMMA ,
#define TILES(mr) TILE(mr, 1) TILE(mr, 2) TILE(mr, 3) TILE(mr, 4) TILE(mr, 5) TILE(mr, 6)
TILES(1) TILES(2) TILES(3) TILES(4)
#undef TILES
#undef COMMA
#undef TILE
#undef TILE_VARIANT

typedef void (*FN(nt_tile_fn))(int64_t, const T *, int64_t, const T *, int64_t, const int64_t *, const int64_t *,
                               int64_t, int64_t, T *, int64_t, int);
#define ROW(t, mr) {FN(t##_##mr##_1), FN(t##_##mr##_2), FN(t##_##mr##_3), FN(t##_##mr##_4), FN(t##_##mr##_5), \
                    FN(t##_##mr##_6)}
static const FN(nt_tile_fn) FN(nt_tiles)[3][4][6] = {
    {ROW(nt_tile, 1), ROW(nt_tile, 2), ROW(nt_tile, 3), ROW(nt_tile, 4)},
    {ROW(snt_tile, 1), ROW(snt_tile, 2), ROW(snt_tile, 3), ROW(snt_tile, 4)},
    {ROW(mnt_tile, 1), ROW(mnt_tile, 2), ROW(mnt_tile, 3), ROW(mnt_tile, 4)}};
#undef ROW

/* B's rows with a stride ldb, or (boff, voff not NULL) through the tables; rows of nvr vectors, the
 * last with `lanes` lanes, where nvr > 0 */
static void FN(gemm_nt)(int64_t m, int64_t n, int64_t kk, const T *A, int64_t lda, const T *B, int64_t ldb,
                        const int64_t *boff, const int64_t *voff, int64_t nvr, int64_t lanes, T *C, int64_t ldc,
                        int acc)
{
    const int mode = boff ? 1 + (nvr > 0) : 0;
    for (int64_t i = 0; i < m; i += NT_MR)
        for (int64_t j = 0; j < n; j += NT_NR)
            FN(nt_tiles)[mode][lossk_min64(NT_MR, m - i) - 1][lossk_min64(NT_NR, n - j) - 1](
                kk, A + i * lda, lda, boff ? B : B + j * ldb, ldb, boff ? boff + j : NULL, voff, nvr, lanes,
                C + i * ldc + j, ldc, acc);
}

/* Sum of x[0..n) in VL lanes (element i into lane i % VL), the lanes then added in order. */
static T FN(sum)(const T *x, int64_t n)
{
    VEC lanes = (VEC){0};
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        lanes += *(const VEC *)(x + i);
    for (int64_t j = 0; i + j < n; j++)
        lanes[j] += x[i + j];
    T sum = 0;
    for (int64_t j = 0; j < VL; j++)
        sum += lanes[j];
    return sum;
}

/* Between a planar array P (rows x npix, row stride p_rs) and a pixel-major one L whose pixel j
 * holds its `rows` values contiguously from L + (j / w) l_rs + (j % w) l_cs (so an image can go to
 * or come from a padded, channels-last buffer): to_planar copies L into P, else P into L. Whole
 * VL x VL blocks are transposed in registers (log2 VL rounds of two-vector shuffles). */
static void FN(relayout)(int to_planar, int64_t rows, int64_t npix, T *P, int64_t p_rs, T *L, int64_t w,
                         int64_t l_rs, int64_t l_cs)
{
    const int rounds = __builtin_ctzll(VL);
    FN(ivec) lo[8], hi[8];
    for (int round = 0; round < rounds; round++)
        for (int64_t j = 0, d = VL >> (round + 1); j < VL; j++) {
            lo[round][j] = (TI)(j & d ? VL + j - d : j);
            hi[round][j] = (TI)(j & d ? VL + j : j + d);
        }
#define PIX(j) (L + ((j) / w) * l_rs + ((j) % w) * l_cs)
    for (int64_t j0 = 0; j0 < npix; j0 += VL)
        for (int64_t i0 = 0; i0 < rows; i0 += VL) {
            if (j0 + VL > npix || i0 + VL > rows) {
                for (int64_t j = j0; j < lossk_min64(j0 + VL, npix); j++)
                    for (int64_t i = i0; i < lossk_min64(i0 + VL, rows); i++) {
                        if (to_planar)
                            P[i * p_rs + j] = PIX(j)[i];
                        else
                            PIX(j)[i] = P[i * p_rs + j];
                    }
                continue;
            }
            T *pix[VL]; /* one division per block, not per pixel */
            for (int64_t k = 0, row = j0 / w, col = j0 % w; k < VL; k++, col = col + 1 == w ? 0 : col + 1,
                         row += col == 0)
                pix[k] = L + row * l_rs + col * l_cs + i0;
            VEC r[VL];
#pragma GCC unroll 16
            for (int64_t k = 0; k < VL; k++)
                r[k] = to_planar ? *(const VEC *)pix[k] : *(const VEC *)(P + (i0 + k) * p_rs + j0);
#pragma GCC unroll 4
            for (int round = 0; round < rounds; round++) {
                const int64_t d = VL >> (round + 1);
#pragma GCC unroll 16
                for (int64_t k = 0; k < VL; k++)
                    if (!(k & d)) {
                        const VEC a = r[k], b = r[k + d];
                        r[k] = __builtin_shuffle(a, b, lo[round]);
                        r[k + d] = __builtin_shuffle(a, b, hi[round]);
                    }
            }
#pragma GCC unroll 16
            for (int64_t k = 0; k < VL; k++) {
                if (to_planar)
                    *(VEC *)(P + (i0 + k) * p_rs + j0) = r[k];
                else
                    *(VEC *)pix[k] = r[k];
            }
        }
#undef PIX
}

/* dst[j dst_rs + i] = src[i src_rs + j], i < rows, j < cols */
static void FN(transpose)(int64_t rows, int64_t cols, const T *src, int64_t src_rs, T *dst, int64_t dst_rs)
{
    FN(relayout)(0, rows, cols, (T *)src, src_rs, dst, cols, 0, dst_rs);
}
