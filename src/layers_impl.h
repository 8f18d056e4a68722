/* Template for layers.c: T is the element type, SFX its suffix (f32, f64). */
#define FN(name) LOSSK_CAT(name, SFX)
#define VL ((int64_t)(VBYTES / sizeof(T)))
typedef T FN(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(T)), may_alias));
typedef TI FN(ivec) __attribute__((vector_size(VBYTES), aligned(sizeof(T)), may_alias));
#define VEC FN(vec)

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

/* ---- Winograd F(4x4, 5x5), F(6x6, 3x3) and F(4x4, 3x3) --------------------------------------
 * Y = AT [(G g GT) . (BT d B)] A on wt x wt input tiles with stride WO = wt + 1 - r: 8x8 tiles with
 * points 0, +-1, +-2, +-1/2, inf for F(4x4, 5x5) and F(6x6, 3x3), so the two share BT; 6x6 tiles
 * with points 0, +-1, +-2, inf for F(4x4, 3x3). With s_t the scale BT's inverse gives point p_t,
 * AT[i][t] = p_t^i and G[t][j] = s_t p_t^j (the inf point: AT[WO - 1][wt - 1] = G[wt - 1][r - 1] =
 * 1), so transforms of one tile size differ only in how many rows of AT and columns of G they
 * take. Float32 results stay within a few 1e-6 of the largest output, like a direct sum's. Each of
 * the wt^2 frequencies is one GEMM over channels: 25 / 4 = 6.25 (5x5), 9 x 36 / 64 = 5.06 or
 * 9 x 16 / 36 = 4 (3x3) times fewer multiplies than direct, less the tiles' part past the output.
 * Backward is the same computation transposed (dU = sum dM VT, dM = A dY AT, dg = GT dU G): exact
 * gradients of the forward, with the input transform shared; the input gradient is a forward
 * convolution of grad_output with the flipped, transposed kernel.
 * Inside, channels go last and are padded to whole vectors, so every transform works on vectors
 * of channels. Each 1-D transform reads its values at stride `is` and writes at stride `os`. */
#define WT 8  /* the largest input tile */
#define WF 64 /* its frequencies: WT * WT */

LOSSK_INLINE void FN(wt_bt)(const int wt, const int n, const VEC *d, int64_t is, VEC *o, int64_t os) /* BT */
{
    (void)n;
    if (wt == 6) {
        const VEC d0 = d[0], d1 = d[is], d2 = d[2 * is], d3 = d[3 * is], d4 = d[4 * is], d5 = d[5 * is];
        o[0] = 4 * d0 - 5 * d2 + d4;
        o[5 * os] = 4 * d1 - 5 * d3 + d5;
        VEC a = d4 - 4 * d2, b = d3 - 4 * d1;
        o[os] = a + b;
        o[2 * os] = a - b;
        a = d4 - d2;
        b = 2 * (d3 - d1);
        o[3 * os] = a + b;
        o[4 * os] = a - b;
        return;
    }
    const VEC d0 = d[0], d1 = d[is], d2 = d[2 * is], d3 = d[3 * is];
    const VEC d4 = d[4 * is], d5 = d[5 * is], d6 = d[6 * is], d7 = d[7 * is];
    o[0] = (d6 - d0) + (T)5.25 * (d2 - d4);
    o[7 * os] = (d7 - d1) + (T)5.25 * (d3 - d5);
    VEC a = d2 + d6 - (T)4.25 * d4, b = d1 + d5 - (T)4.25 * d3;
    o[os] = a + b;
    o[2 * os] = a - b;
    a = d6 + (T)0.25 * d2 - (T)1.25 * d4;
    b = (T)0.5 * d1 - (T)2.5 * d3 + 2 * d5;
    o[3 * os] = a + b;
    o[4 * os] = a - b;
    a = d6 + 4 * d2 - 5 * d4;
    b = 2 * d1 - (T)2.5 * d3 + (T)0.5 * d5;
    o[5 * os] = a + b;
    o[6 * os] = a - b;
}

/* The other transforms for tile wt and n = WO (AT, A) or n = r (G, GT), constants at every call.
 * With c_t = 1, 2, 1/2 for the pairs of points +-c_t (t = 1, 2, and 3 with 8x8 tiles): AT's row i
 * takes the pair's sum (i even) or difference (i odd) times c_t^i. G's scales s_t are folded, for
 * 8x8 tiles as -1 (point 0), -2/9, 1/90 = (1/2) / 45 and 32 / 45; for 6x6 as 1/4, -1/6, 1/24. */
#define WT_POW(t, i) ((t) == 1 ? (T)1 : (t) == 2 ? (T)(1 << (i)) : (T)1 / (T)(1 << (i))) /* c_t^i */

LOSSK_INLINE void FN(wt_at)(const int wt, const int n, const VEC *m, int64_t is, VEC *o, int64_t os) /* AT */
{
    const VEC m1 = m[is], m2 = m[2 * is], m3 = m[3 * is], m4 = m[4 * is];
    const VEC m5 = wt == 8 ? m[5 * is] : (VEC){0}, m6 = wt == 8 ? m[6 * is] : (VEC){0};
    const VEC s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4, s56 = m5 + m6, d56 = m5 - m6;
    o[0] = m[0] + s12 + s34;
    if (wt == 8)
        o[0] += s56;
#pragma GCC unroll 8
    for (int i = 1; i < n; i++) {
        o[i * os] = (i % 2 ? d12 : s12) + WT_POW(2, i) * (i % 2 ? d34 : s34);
        if (wt == 8)
            o[i * os] += WT_POW(3, i) * (i % 2 ? d56 : s56);
        if (i == n - 1)
            o[i * os] += m[(wt - 1) * is];
    }
}

LOSSK_INLINE void FN(wt_a)(const int wt, const int n, const VEC *y, int64_t is, VEC *o, int64_t os) /* A */
{
    o[0] = y[0];
#pragma GCC unroll 4
    for (int t = 1; t < wt / 2; t++) {
        VEC e = y[0], od = WT_POW(t, 1) * y[is];
#pragma GCC unroll 8
        for (int i = 2; i < n; i++) {
            if (i % 2)
                od += WT_POW(t, i) * y[i * is];
            else
                e += WT_POW(t, i) * y[i * is];
        }
        o[(2 * t - 1) * os] = e + od;
        o[2 * t * os] = e - od;
    }
    o[(wt - 1) * os] = y[(n - 1) * is];
}

LOSSK_INLINE void FN(wt_g)(const int wt, const int n, const VEC *g, int64_t is, VEC *o, int64_t os) /* G */
{
    if (wt == 8)
        o[0] = -g[0];
    else
        o[0] = (T)0.25 * g[0];
#pragma GCC unroll 4
    for (int t = 1; t < wt / 2; t++) {
        /* the pair's c_t^j, times 1/2 (t = 2) or 32 (t = 3) with 8x8 tiles */
        const T scale[4] = {0, 1, wt == 8 ? (T)0.5 : 1, 32};
        VEC e = scale[t] * g[0], od = scale[t] * WT_POW(t, 1) * g[is];
#pragma GCC unroll 8
        for (int j = 2; j < n; j++) {
            if (j % 2)
                od += scale[t] * WT_POW(t, j) * g[j * is];
            else
                e += scale[t] * WT_POW(t, j) * g[j * is];
        }
        const T c1 = wt == 8 ? (T)(-2.0 / 9) : (T)(-1.0 / 6), div = wt == 8 ? 45 : 24;
        o[(2 * t - 1) * os] = t == 1 ? c1 * (e + od) : (e + od) / div;
        o[2 * t * os] = t == 1 ? c1 * (e - od) : (e - od) / div;
    }
    o[(wt - 1) * os] = g[(n - 1) * is];
}

LOSSK_INLINE void FN(wt_gt)(const int wt, const int n, const VEC *u, int64_t is, VEC *o, int64_t os) /* GT */
{
    const VEC u0 = u[0], ulast = u[(wt - 1) * is];
    const VEC u5 = wt == 8 ? u[5 * is] : (VEC){0}, u6 = wt == 8 ? u[6 * is] : (VEC){0};
    const VEC s12 = u[is] + u[2 * is], d12 = u[is] - u[2 * is], s34 = u[3 * is] + u[4 * is];
    const VEC d34 = u[3 * is] - u[4 * is], s56 = u5 + u6, d56 = u5 - u6;
    const T c = wt == 8 ? (T)(-2.0 / 9) : (T)(-1.0 / 6), div = wt == 8 ? 45 : 24;
#pragma GCC unroll 8
    for (int j = 0; j < n; j++) {
        VEC v = c * (j % 2 ? d12 : s12);
        if (j == 0)
            v = wt == 8 ? v - u0 : v + (T)0.25 * u0;
        VEC pairs = (wt == 8 ? (T)0.5 : 1) * WT_POW(2, j) * (j % 2 ? d34 : s34);
        if (wt == 8)
            pairs += 32 * WT_POW(3, j) * (j % 2 ? d56 : s56);
        v += pairs / div;
        if (j == n - 1)
            v += ulast;
        o[j * os] = v;
    }
}
#undef WT_POW

/* out (nout x nout) = F in (nin x nin) FT for the 1-D transform F (of size n, see wt_at): columns,
 * then rows. in is read at row stride `irs` and column stride `ics` (vectors). */
#define SEPARABLE(f, wt, n, nin, nout, in, irs, ics, out) do { \
        VEC tmp_[WT * WT]; \
        for (int j_ = 0; j_ < (nin); j_++) f((wt), (n), (in) + j_ * (ics), (irs), tmp_ + j_, (nin)); \
        for (int i_ = 0; i_ < (nout); i_++) f((wt), (n), tmp_ + i_ * (nin), 1, (out) + i_ * (nout), 1); \
    } while (0)

static inline int64_t FN(round_vl)(int64_t n) { return (n + VL - 1) / VL * VL; }

/* Tile grid of a P x Q output with an r x r kernel: input tiles wt x wt (wf frequencies), ty x tx
 * output tiles of wo x wo; cp, kp: channel counts padded to vectors; images go through the GEMMs
 * `group` at a time, so that each has enough rows of tiles. */
typedef struct { int64_t cin, h, w, kout, p, q, ph, pw, r, wt, wf, wo, ty, tx, nt, cp, kp, group; } FN(wgeom);

/* The input tile of an r x r kernel on a P x Q output: 8 for 5x5; for 3x3 the one whose tiles
 * cost fewer multiplies, tiles past the output counted (F(4x4, 3x3) for 8x8, F(6x6, 3x3) for
 * 12x12; a tie, 16x16 say, goes to the larger tile, whose transforms cost less an output). */
static inline int64_t FN(wino_tile)(int64_t r, int64_t p, int64_t q)
{
    if (r != 3)
        return WT;
    const int64_t t6 = ((p + 3) / 4) * ((q + 3) / 4), t8 = ((p + 5) / 6) * ((q + 5) / 6);
    return 36 * t6 < 64 * t8 ? 6 : 8;
}

static FN(wgeom) FN(wino_geom)(int64_t n, int64_t cin, int64_t h, int64_t w, int64_t kout, int64_t p, int64_t q,
                               int64_t ph, int64_t pw, int64_t r, int64_t wt)
{
    /* other kernels than 3x3 and 5x5 use only the group, for conv_scratch */
    const int64_t wo = r == 3 || r == 5 ? wt + 1 - r : 4;
    FN(wgeom) g = {cin, h, w, kout, p, q, ph, pw, r, wt, wt * wt, wo, (p + wo - 1) / wo, (q + wo - 1) / wo, 0,
                   FN(round_vl)(cin), FN(round_vl)(kout), 0};
    g.nt = g.ty * g.tx;
    /* about 8 MR rows of tiles per GEMM, the batch cut into groups of nearly equal size */
    const int64_t want = g.nt > 0 ? (8 * MR + g.nt - 1) / g.nt : 1, groups = (n + want - 1) / want;
    g.group = groups > 0 ? (n + groups - 1) / groups : want;
    return g;
}

/* Per-thread scratch, in elements: padded channels-last input of one image, V (group nt, wf, cp),
 * M (group nt, wf, kp), channels-last output of one image (wo ty, wo tx, kp). */
static int64_t FN(wino_scratch)(const FN(wgeom) *g, int64_t *xp_n, int64_t *v_n, int64_t *m_n)
{
    *xp_n = ALIGN_UP((g->wo * g->ty + g->r - 1) * (g->wo * g->tx + g->r - 1) * g->cp);
    *v_n = ALIGN_UP(g->group * g->nt * g->wf * g->cp);
    *m_n = ALIGN_UP(g->group * g->nt * g->wf * g->kp);
    return *xp_n + *v_n + *m_n + ALIGN_UP(g->wo * g->wo * g->nt * g->kp);
}

/* U (wf, cp, kp) and the padded bias (kp) from weights w (kout, cin, r, r) read through strides;
 * flip turns each kernel by 180 degrees (the backward-input convolution). */
static void FN(wino_weights)(const FN(wgeom) *g, const T *w, int64_t w_kstride, int64_t w_cstride, int flip,
                             const T *bias, T *U, int nt)
{
    const int64_t kv = g->kp / VL;
    T *bp = U + g->wf * g->cp * g->kp;
    for (int64_t k = 0; k < g->kp; k++)
        bp[k] = bias && k < g->kout ? bias[k] : 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t ck = 0; ck < g->cp * kv; ck++) {
        const int64_t c = ck / kv, k0 = ck % kv * VL;
        const int rr = (int)(g->r * g->r);
        VEC in[25], u[WF];
        for (int i = 0; i < rr; i++)
            for (int64_t j = 0; j < VL; j++)
                in[i][j] = c < g->cin && k0 + j < g->kout ? w[(k0 + j) * w_kstride + c * w_cstride + (flip ? rr - 1 - i : i)]
                                                          : 0;
        if (g->r == 5)
            SEPARABLE(FN(wt_g), 8, 5, 5, 8, in, 5, 1, u);
        else if (g->wt == 8)
            SEPARABLE(FN(wt_g), 8, 3, 3, 8, in, 3, 1, u);
        else
            SEPARABLE(FN(wt_g), 6, 3, 3, 6, in, 3, 1, u);
        for (int e = 0; e < g->wf; e++)
            *(VEC *)(U + (e * g->cp + c) * g->kp + k0) = u[e];
    }
}

/* x (cin, h, w), zero-padded by (ph, pw) -> V (nt, wf, cp): each tile's frequencies together, so
 * the transform writes one run and the GEMMs stride over tiles. wt = g->wt, a constant at each
 * call (wino_input). */
LOSSK_INLINE void FN(wino_input_wt)(const int wt, const FN(wgeom) *g, const T *x, T *xp, T *V)
{
    const int wf = wt * wt;
    const int64_t C = g->cp, WO = g->wo, Wp = WO * g->tx + g->r - 1;
    memset(xp, 0, sizeof(T) * (WO * g->ty + g->r - 1) * Wp * C);
    FN(relayout)(0, g->cin, g->h * g->w, (T *)x, g->h * g->w, xp + (g->ph * Wp + g->pw) * C, g->w, Wp * C, C);
    for (int64_t t = 0; t < g->nt; t++) {
        const VEC *d = (const VEC *)(xp + (WO * (t / g->tx) * Wp + WO * (t % g->tx)) * C);
        for (int64_t c = 0; c < C / VL; c++) {
            VEC out[WF];
            SEPARABLE(FN(wt_bt), wt, wt, wt, wt, d + c, Wp * (C / VL), C / VL, out);
            for (int e = 0; e < wf; e++)
                *(VEC *)(V + (t * wf + e) * C + c * VL) = out[e];
        }
    }
}

static void FN(wino_input)(const FN(wgeom) *g, const T *x, T *xp, T *V)
{
    if (g->wt == 8)
        FN(wino_input_wt)(8, g, x, xp, V);
    else
        FN(wino_input_wt)(6, g, x, xp, V);
}

/* M (nt, wf, kp) of one image -> y (kout, p, q) + bias, or with pool the 2x2 max-pooled y
 * (kout, p/2, q/2) and its argmax into `indices` (unless NULL). U holds the padded bias after the weights. wt = g->wt and
 * WO = g->wo, constants at each call (wino_output), so that the tile's index arithmetic folds. */
LOSSK_INLINE void FN(wino_output_wo)(const int wt, const int WO, const FN(wgeom) *g, const T *M, const T *U,
                                     int has_bias, int pool, T *y, int64_t *indices, T *yt)
{
    const int half = WO / 2, wf = wt * wt;
    const int64_t K = g->kp, TX = g->tx, Wy = WO * TX; /* yt: (WO ty, WO tx, kp); pooled: half that */
    const VEC *bias = (const VEC *)(U + wf * g->cp * K);
    TI *pos = (TI *)(yt + WO * WO * g->nt * K / 4);     /* pooled: the argmax's place in its window */
    for (int64_t t = 0; t < g->nt; t++) {
        const int64_t oy = WO * (t / TX), ox = WO * (t % TX);
        for (int64_t k = 0; k < K / VL; k++) {
            const VEC *m = (const VEC *)(M + t * wf * K) + k;
            VEC out[WO * WO];
            SEPARABLE(FN(wt_at), wt, WO, wt, WO, m, wt * (K / VL), K / VL, out);
            const VEC b = has_bias ? bias[k] : (VEC){0};
            for (int e = 0; e < WO * WO; e++)
                out[e] += b;
            if (!pool) {
                for (int e = 0; e < WO * WO; e++)
                    *(VEC *)(yt + ((oy + e / WO) * Wy + ox + e % WO) * K + k * VL) = out[e];
                continue;
            }
            for (int cell = 0; cell < half * half; cell++) {
                /* PyTorch's rule: the first maximum in row-major order, and nan beats everything */
                const int r0 = 2 * (cell / half), c0 = 2 * (cell % half);
                VEC best = out[r0 * WO + c0];
                FN(ivec) arg = (FN(ivec)){0};
                for (int e = 1; e < 4; e++) {
                    const VEC v = out[(r0 + e / 2) * WO + c0 + e % 2];
                    const FN(ivec) take = (v > best) | (v != v);
                    best = (VEC)(((FN(ivec))v & take) | ((FN(ivec))best & ~take));
                    arg = (arg & ~take) | (take & e);
                }
                const int64_t at = ((oy / 2 + cell / half) * (Wy / 2) + ox / 2 + cell % half) * K + k * VL;
                *(VEC *)(yt + at) = best;
                if (indices)
                    *(FN(ivec) *)(pos + at) = arg;
            }
        }
    }
    if (!pool) {
        FN(relayout)(1, g->kout, g->p * g->q, y, g->p * g->q, yt, g->q, Wy * K, K);
        return;
    }
    const int64_t pp = g->p / 2, pq = g->q / 2;
    FN(relayout)(1, g->kout, pp * pq, y, pp * pq, yt, pq, Wy / 2 * K, K);
    for (int64_t k = 0; indices && k < g->kout; k++)
        for (int64_t i = 0; i < pp; i++)
            for (int64_t j = 0; j < pq; j++) {
                const TI e = pos[(i * (Wy / 2) + j) * K + k];
                indices[(k * pp + i) * pq + j] = (2 * i + e / 2) * g->q + 2 * j + e % 2;
            }
}

static void FN(wino_output)(const FN(wgeom) *g, const T *M, const T *U, int has_bias, int pool, T *y,
                            int64_t *indices, T *yt)
{
    if (g->wt == 6)
        FN(wino_output_wo)(6, 4, g, M, U, has_bias, pool, y, indices, yt);
    else if (g->wo == 4)
        FN(wino_output_wo)(8, 4, g, M, U, has_bias, pool, y, indices, yt);
    else
        FN(wino_output_wo)(8, 6, g, M, U, has_bias, pool, y, indices, yt);
}

/* y for images [0, nimg) of a group (nimg <= group): x (nimg, cin, h, w) -> y (nimg, ...), pooled
 * (with its argmax into indices, unless NULL) or not. */
static void FN(wino_group)(const FN(wgeom) *g, int64_t nimg, const T *x, const T *U, int has_bias, T *y,
                           int64_t ysize, int pool, int64_t *indices, T *scratch)
{
    int64_t xp_n, v_n, m_n;
    FN(wino_scratch)(g, &xp_n, &v_n, &m_n);
    T *xp = scratch, *V = xp + xp_n, *M = V + v_n, *yt = M + m_n;
    const int64_t C = g->cp, K = g->kp, rows = nimg * g->nt;
    for (int64_t i = 0; i < nimg; i++)
        FN(wino_input)(g, x + i * g->cin * g->h * g->w, xp, V + i * g->nt * g->wf * C);
    for (int64_t e = 0; e < g->wf; e++)
        FN(gemm)(rows, K, C, V + e * C, g->wf * C, 1, U + e * C * K, K, M + e * K, g->wf * K, 0);
    for (int64_t i = 0; i < nimg; i++)
        FN(wino_output)(g, M + i * g->nt * g->wf * K, U, has_bias, pool, y + i * ysize,
                        indices ? indices + i * ysize : NULL, yt);
}

/* dy (kout, p, q) -> dM (nt, wf, kp) = A dy AT per tile, through channels-last dyp (wo ty, wo tx, kp). */
static void FN(wino_grad_output)(const FN(wgeom) *g, const T *dy, T *dyp, T *dM)
{
    const int64_t K = g->kp, TX = g->tx, WO = g->wo, Wy = WO * TX, wf = g->wf;
    memset(dyp, 0, sizeof(T) * WO * WO * g->nt * K);
    FN(relayout)(0, g->kout, g->p * g->q, (T *)dy, g->p * g->q, dyp, g->q, Wy * K, K);
    for (int64_t t = 0; t < g->nt; t++) {
        const VEC *d = (const VEC *)(dyp + (WO * (t / TX) * Wy + WO * (t % TX)) * K);
        for (int64_t k = 0; k < K / VL; k++) {
            VEC out[WF];
            if (g->wt == 6)
                SEPARABLE(FN(wt_a), 6, 4, 4, 6, d + k, Wy * (K / VL), K / VL, out);
            else if (WO == 4)
                SEPARABLE(FN(wt_a), 8, 4, 4, 8, d + k, Wy * (K / VL), K / VL, out);
            else
                SEPARABLE(FN(wt_a), 8, 6, 6, 8, d + k, Wy * (K / VL), K / VL, out);
            for (int64_t e = 0; e < wf; e++)
                *(VEC *)(dM + (t * wf + e) * K + k * VL) = out[e];
        }
    }
}

/* ---- Direct convolution: im2col + GEMM ------------------------------------------------------ */

/* Row stride of col: P Q padded by a vector, so rows a power of two long do not all fall into the
 * same cache sets when a GEMM streams several of them. */
static inline int64_t FN(col_ld)(const lossk_conv2d_args *a) { return a->p * a->q + VL; }

/* col (C R S, P Q): row (c, r, s) holds the input pixels that kernel tap meets, 0 in padding. */
static void FN(im2col)(const lossk_conv2d_args *a, const T *x, T *col)
{
    const int64_t P = a->p, Q = a->q, sw = a->stride_w;
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t r = 0; r < a->r; r++)
            for (int64_t s = 0; s < a->s; s++) {
                T *row = col + ((c * a->r + r) * a->s + s) * FN(col_ld)(a);
                /* output columns [lo, hi) read inside the input row */
                const int64_t first = s - a->pad_w;
                const int64_t lo = first >= 0 ? 0 : lossk_min64(Q, (-first + sw - 1) / sw);
                const int64_t hi = a->w - first <= 0 ? lo : lossk_min64(Q, (a->w - first + sw - 1) / sw);
                for (int64_t oh = 0; oh < P; oh++) {
                    const int64_t ih = oh * a->stride_h - a->pad_h + r;
                    T *o = row + oh * Q;
                    if (ih < 0 || ih >= a->h) {
                        memset(o, 0, sizeof(T) * Q);
                        continue;
                    }
                    const T *xr = x + (c * a->h + ih) * a->w + first;
                    /* one loop (with masked loads) rather than memset, memcpy, memset: the rows are
                     * short, and the library calls held a tenth of the profile of a 3-channel layer's
                     * forward pass */
                    if (sw == 1)
                        for (int64_t ow = 0; ow < Q; ow++)
                            o[ow] = ow >= lo && ow < hi ? xr[ow] : 0;
                    else
                        for (int64_t ow = 0; ow < Q; ow++)
                            o[ow] = ow >= lo && ow < hi ? xr[ow * sw] : 0;
                }
            }
}

/* ---- Stride-1 convolution: a GEMM over the padded image --------------------------------------
 * With stride 1, tap (c, r, s) of output pixel (oh, ow) reads pixel (oh + r, ow + s) of the
 * zero-padded image xp (C, HP, WP), at xp + (c HP + r) WP + s + (oh WP + ow): the tap's offset
 * boff[(c, r, s)] = (c HP + r) WP + s plus the pixel's oh WP + ow. So the convolution is a GEMM
 * that reads the padded image itself through two tables of offsets: no im2col, and the image is a
 * few kilobytes that stay in L1. Vectors run along one of two dimensions (conv_layout):
 * - CONV_PIXELS: along each output row, rounded up to whole vectors (P, QV). gemm_shifted, with
 *   voff[t] = oh WP + ow for vector t of the plane, and the kernel (K, C R S) as A.
 * - CONV_CHANNELS: along the output channels, rounded up to KV. gemm_ashifted, one row per output
 *   pixel with voff[j] = oh WP + ow for pixel j, and the kernel transposed (C R S, KV) as B; the
 *   output comes out channels-last and is transposed. No lane holds a pixel that is not there, so
 *   rows shorter than a vector (8 x 8 images with 16 lanes) cost nothing extra, and the weight
 *   gradient, a sum over pixels, needs no rows of whole vectors. */

static inline int64_t FN(shifted_qv)(const lossk_conv2d_args *a) { return (a->q + VL - 1) / VL * VL; }

/* With stride 1, the input gradient of `a` is the forward convolution of grad_output (K, P, Q)
 * with the kernel flipped and its channels swapped (C, K, R, S), padded by R - 1 - pad. */
static lossk_conv2d_args FN(conv_transposed)(const lossk_conv2d_args *a)
{
    lossk_conv2d_args t = *a;
    t.c = a->k, t.h = a->p, t.w = a->q, t.k = a->c, t.p = a->h, t.q = a->w;
    t.pad_h = a->r - 1 - a->pad_h, t.pad_w = a->s - 1 - a->pad_w;
    t.pool = 0;
    return t;
}

/* The forward pass takes the layout that computes fewer padding lanes (CONV_PIXELS on a tie: it
 * has no transpose). So does the weight gradient, a sum over output pixels, where a row's lanes
 * past Q are masked (gemm_nt) when rows are not whole vectors: 3 -> 6 channels with rows of 28
 * took 0.45 of CONV_CHANNELS' time (float32, AVX-512) and of im2col's, 16 -> 10 0.74, 16 -> 24
 * with rows of 7 2.1 the other way; ties went either way within 5%. With rows of whole vectors,
 * CONV_CHANNELS where WGRAD_CHANNELS says so and the output channels fill whole vectors (4
 * channels in 16 lanes took 3.3 times as long as CONV_PIXELS). The input gradient is a forward
 * convolution (conv_transposed) when the padding is below the kernel's size. */
static int FN(conv_layout)(const lossk_conv2d_args *a, int op)
{
    if (a->stride_h != 1 || a->stride_w != 1)
        return CONV_IM2COL;
    if (op == OP_BACKWARD_INPUT) {
        if (a->pad_h >= a->r || a->pad_w >= a->s)
            return CONV_IM2COL;
        const lossk_conv2d_args t = FN(conv_transposed)(a);
        return FN(conv_layout)(&t, OP_FORWARD);
    }
    const int64_t QV = FN(shifted_qv)(a);
    if (op == OP_BACKWARD_WEIGHT) {
        const int64_t KV = FN(round_vl)(a->k);
        if (QV == a->q)
            return WGRAD_CHANNELS && KV == a->k ? CONV_CHANNELS : CONV_PIXELS;
        return a->q * KV >= a->k * QV ? CONV_PIXELS : CONV_CHANNELS;
    }
    if (FN(round_vl)(a->k) * a->q < a->k * QV)
        return CONV_CHANNELS;
    return CONV_PIXELS;
}

/* the padded image; with CONV_PIXELS the last row's columns past Q read up to VL elements past it */
static inline int64_t FN(shifted_xp_n)(const lossk_conv2d_args *a)
{
    return ALIGN_UP(a->c * (a->h + 2 * a->pad_h) * (a->w + 2 * a->pad_w) + VL);
}

/* entries of voff per image: vectors of the plane, or pixels */
static inline int64_t FN(shifted_outputs)(const lossk_conv2d_args *a, int layout)
{
    return layout == CONV_CHANNELS ? a->p * a->q : a->p * FN(shifted_qv)(a) / VL;
}

/* The weight gradient's sums run over the output pixels of this many images at a time (their
 * padded copies one after the other): with CONV_PIXELS so that a small image's few pixels do not
 * each leave a horizontal sum and an update of the partial gradient, with CONV_CHANNELS so that
 * each tile of the partial gradient is loaded and stored once per group. At least WGRAD_DOT
 * pixels, up to 8 images. Groups start at their block's first image: the same bits for any
 * thread count. */
static inline int64_t FN(shifted_group)(const lossk_conv2d_args *a, int op)
{
    const int64_t PQ = a->p * a->q;
    return op == OP_BACKWARD_WEIGHT ? lossk_min64(8, (WGRAD_DOT + PQ - 1) / PQ) : 1;
}

/* boff (C R S) and voff (group, shifted_outputs): output t of image g at g xp_n + voff[t] */
static void FN(shifted_offsets)(const lossk_conv2d_args *a, int layout, int64_t group, int64_t *boff, int64_t *voff)
{
    const int64_t HP = a->h + 2 * a->pad_h, WP = a->w + 2 * a->pad_w;
    const int64_t step = layout == CONV_CHANNELS ? 1 : VL, QS = layout == CONV_CHANNELS ? a->q : FN(shifted_qv)(a);
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t r = 0; r < a->r; r++)
            for (int64_t s = 0; s < a->s; s++)
                boff[(c * a->r + r) * a->s + s] = (c * HP + r) * WP + s;
    for (int64_t g = 0, t = 0; g < group; g++)
        for (int64_t oh = 0; oh < a->p; oh++)
            for (int64_t ow = 0; ow < QS; ow += step)
                voff[t++] = g * FN(shifted_xp_n)(a) + oh * WP + ow;
}

/* Shared scratch of the kernel as the GEMM reads it (pack_kernel); 0 when that is w itself. */
static int64_t FN(packed_n)(const lossk_conv2d_args *a, int op, int layout)
{
    const lossk_conv2d_args t = op == OP_BACKWARD_INPUT ? FN(conv_transposed)(a) : *a;
    const int64_t L = t.c * t.r * t.s;
    if (layout == CONV_CHANNELS)
        return ALIGN_UP((L + 1) * FN(round_vl)(t.k));
    return layout == CONV_PIXELS && op == OP_BACKWARD_INPUT ? ALIGN_UP(L * t.k) : 0;
}

/* A block's partial weight gradient, (K, C R S) or with CONV_CHANNELS (C R S, KV), then its bias
 * gradient (K). */
static int64_t FN(wgrad_part_n)(const lossk_conv2d_args *a, int layout)
{
    const int64_t k = layout == CONV_CHANNELS ? FN(round_vl)(a->k) : a->k;
    return ALIGN_UP(a->c * a->r * a->s * k + a->k);
}

/* The kernel of the convolution a GEMM runs: w (K, C, R, S), or for the input gradient (flip) the
 * transposed convolution's (C, K, R, S), w's taps turned by 180 degrees. With CONV_PIXELS as
 * (output channels, taps); with CONV_CHANNELS as (taps, output channels padded to KV with zeros),
 * followed by the bias (zeros without one) padded likewise. */
static void FN(pack_kernel)(const lossk_conv2d_args *a, int flip, int layout, const T *w, const T *bias, T *dst)
{
    const int64_t R = a->r, S = a->s, CI = flip ? a->k : a->c, CO = flip ? a->c : a->k, L = CI * R * S;
    const int64_t KV = layout == CONV_CHANNELS ? FN(round_vl)(CO) : CO;
    const int64_t ocs = layout == CONV_CHANNELS ? 1 : L, ts = layout == CONV_CHANNELS ? KV : 1;
    for (int64_t o = 0; o < KV; o++)
        for (int64_t i = 0; i < CI; i++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t s = 0; s < S; s++)
                    dst[o * ocs + ((i * R + r) * S + s) * ts] =
                        o >= CO ? 0
                        : flip  ? w[((i * CO + o) * R + R - 1 - r) * S + S - 1 - s]
                                : w[((o * CI + i) * R + r) * S + s];
    for (int64_t o = 0; layout == CONV_CHANNELS && o < KV; o++)
        dst[L * KV + o] = bias && o < CO ? bias[o] : 0;
}

/* Per-thread scratch of one image of an op that is not Winograd's: im2col's col, or the padded
 * image and the output before it is packed (CONV_PIXELS with rows not whole vectors) or
 * transposed (CONV_CHANNELS), or (weight gradient) a group's padded images and output gradients. */
static int64_t FN(conv_image_n)(const lossk_conv2d_args *a, int op)
{
    const int layout = FN(conv_layout)(a, op);
    if (layout == CONV_IM2COL)
        return ALIGN_UP(a->c * a->r * a->s * FN(col_ld)(a));
    if (op == OP_BACKWARD_INPUT) {
        const lossk_conv2d_args t = FN(conv_transposed)(a);
        return FN(conv_image_n)(&t, OP_FORWARD);
    }
    const int64_t QV = FN(shifted_qv)(a), group = FN(shifted_group)(a, op), PQ = a->p * a->q;
    const int64_t KV = FN(round_vl)(a->k), xp_n = group * FN(shifted_xp_n)(a);
    if (layout == CONV_CHANNELS)
        return xp_n + ALIGN_UP(group * PQ * KV);
    if (op == OP_BACKWARD_WEIGHT)
        return xp_n + (group > 1 || QV != a->q ? ALIGN_UP(group * a->k * a->p * QV) : 0);
    return xp_n + (QV != a->q ? ALIGN_UP(a->k * a->p * QV) : 0);
}

/* dst[0, n) = src[0, n), for the rows of a small image: whole vectors, the last one ending at n
 * (overlapping the one before), or below a vector two overlapping blocks of the largest power of
 * two in bytes that fits, as a memcpy does inside, but inlined. A library call per row of tens of
 * elements cost more than the copy: memcpy and memmove held 13% of the profile of PyTorch's
 * tutorial network's inference. */
LOSSK_INLINE void FN(copy_row)(T *dst, const T *src, int64_t n)
{
    if (n >= VL) {
        for (int64_t j = 0; j + VL <= n; j += VL) {
            VEC v = *(const VEC *)(src + j);
#if defined(__x86_64__) || defined(__i386__)
            __asm__("" : "+v"(v)); /* through a register: else GCC turns the loop back into memcpy */
#endif
            *(VEC *)(dst + j) = v;
        }
        *(VEC *)(dst + n - VL) = *(const VEC *)(src + n - VL);
        return;
    }
    char *d = (char *)dst;
    const char *s = (const char *)src;
    const size_t bytes = (size_t)n * sizeof(T);
#define COPY_BLOCKS(size) \
    if (bytes >= (size)) { \
        memcpy(d, s, (size)); \
        memcpy(d + bytes - (size), s + bytes - (size), (size)); \
        return; \
    }
    if (VBYTES > 32) /* below a vector of 32 bytes there are no 32 */
        COPY_BLOCKS(32)
    COPY_BLOCKS(16)
    COPY_BLOCKS(8)
    COPY_BLOCKS(4)
#undef COPY_BLOCKS
}

/* x (C, H, W) -> xp (C, HP, WP), zeros around and past it */
static void FN(pad_image)(const lossk_conv2d_args *a, const T *x, T *xp)
{
    const int64_t HP = a->h + 2 * a->pad_h, WP = a->w + 2 * a->pad_w;
    memset(xp, 0, sizeof(T) * FN(shifted_xp_n)(a));
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t ih = 0; ih < a->h; ih++)
            FN(copy_row)(xp + (c * HP + ih + a->pad_h) * WP + a->pad_w, x + (c * a->h + ih) * a->w, a->w);
}

/* y (K, P, Q) = bias + the stride-1 convolution of x (C, H, W) with the kernel w as pack_kernel
 * lays it out (CONV_PIXELS: or w itself; CONV_CHANNELS: the bias comes with it), through the
 * offset tables; buf holds conv_image_n(a, OP_FORWARD) elements. */
static void FN(conv_image_shifted)(const lossk_conv2d_args *a, int layout, const T *x, const T *w, const T *bias,
                                   const int64_t *boff, const int64_t *voff, T *buf, T *y)
{
    const int64_t QV = FN(shifted_qv)(a), PQV = a->p * QV, L = a->c * a->r * a->s;
    if (layout == CONV_CHANNELS) {
        const int64_t PQ = a->p * a->q, KV = FN(round_vl)(a->k);
        T *yt = buf + FN(shifted_xp_n)(a); /* (P Q, KV), each row starting as the bias */
        for (int64_t j = 0; j < PQ; j++)
            FN(copy_row)(yt + j * KV, w + L * KV, KV);
        FN(pad_image)(a, x, buf);
        FN(gemm_ashifted)(PQ, KV, L, buf, voff, boff, w, KV, yt, KV, 1);
        FN(relayout)(1, a->k, PQ, y, PQ, yt, PQ, 0, KV);
        return;
    }
    T *wide = QV != a->q ? buf + FN(shifted_xp_n)(a) : y; /* rows QV long, then packed into y */
    for (int64_t k = 0; k < a->k; k++)
        for (int64_t i = 0; i < PQV; i++)
            wide[k * PQV + i] = bias ? bias[k] : 0;
    FN(pad_image)(a, x, buf);
    FN(gemm_shifted)(a->k, PQV / VL, L, w, L, 1, buf, boff, voff, wide, PQV, 1);
    for (int64_t kp = 0; wide != y && kp < a->k * a->p; kp++)
        FN(copy_row)(y + kp * a->q, wide + kp * QV, a->q);
}

/* dx (C, H, W) = sum of col's entries over the taps that read each pixel. */
static void FN(col2im)(const lossk_conv2d_args *a, const T *col, T *dx)
{
    const int64_t P = a->p, Q = a->q;
    memset(dx, 0, sizeof(T) * a->c * a->h * a->w);
    for (int64_t c = 0; c < a->c; c++)
        for (int64_t r = 0; r < a->r; r++)
            for (int64_t s = 0; s < a->s; s++) {
                const T *row = col + ((c * a->r + r) * a->s + s) * FN(col_ld)(a);
                for (int64_t oh = 0; oh < P; oh++) {
                    const int64_t ih = oh * a->stride_h - a->pad_h + r;
                    if (ih < 0 || ih >= a->h)
                        continue;
                    T *xr = dx + (c * a->h + ih) * a->w;
                    for (int64_t ow = 0; ow < Q; ow++) {
                        const int64_t iw = ow * a->stride_w - a->pad_w + s;
                        if (iw >= 0 && iw < a->w)
                            xr[iw] += row[oh * Q + ow];
                    }
                }
            }
}

/* ---- max_pool2d ------------------------------------------------------------------------------ */

static int FN(pool_check)(const lossk_pool2d_args *a)
{
    if (a->n < 0 || a->c < 0 || a->h < 0 || a->w < 0 || a->kh < 1 || a->kw < 1 || a->stride_h < 1
        || a->stride_w < 1 || a->h < a->kh || a->w < a->kw || a->p != (a->h - a->kh) / a->stride_h + 1
        || a->q != (a->w - a->kw) / a->stride_w + 1)
        return LOSSK_ERR_ARGUMENT;
    return LOSSK_OK;
}

/* The 2x2 maxima of VL windows whose rows start at r0 and r1 (2 VL values each), and which of
 * the four won (0-3): PyTorch's rule, the first maximum in row-major order, nan beats all. */
LOSSK_INLINE void FN(pool_max4)(const T *r0, const T *r1, FN(ivec) even, FN(ivec) odd, VEC *best, FN(ivec) *arg)
{
    const VEC a0 = *(const VEC *)r0, b0 = *(const VEC *)(r0 + VL);
    const VEC a1 = *(const VEC *)r1, b1 = *(const VEC *)(r1 + VL);
    const VEC cand[4] = {__builtin_shuffle(a0, b0, even), __builtin_shuffle(a0, b0, odd),
                         __builtin_shuffle(a1, b1, even), __builtin_shuffle(a1, b1, odd)};
    *best = cand[0];
    *arg = (FN(ivec)){0};
    for (int e = 1; e < 4; e++) {
        const FN(ivec) take = (cand[e] > *best) | (cand[e] != cand[e]);
        *best = (VEC)(((FN(ivec))cand[e] & take) | ((FN(ivec))*best & ~take));
        *arg = (*arg & ~take) | (take & e);
    }
}

/* One plane: y (p, q) and indices (unless NULL) from x (h, w); PyTorch's rule: the first maximum
 * in row-major order, and nan beats everything. 2x2 windows with stride 2 go VL outputs at a time,
 * a row's last vector (or a row shorter than one) with its lanes past the row unused: their loads
 * run into the next input rows, or, at the plane's end, into a zero-padded copy, and their
 * results into the next output rows, which are written after, except at the plane's end. Other
 * windows one output at a time. */
static void FN(pool_plane)(const T *x, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t p, int64_t q, T *y, int64_t *indices)
{
    const int fast = kh == 2 && kw == 2 && sh == 2 && sw == 2;
    FN(ivec) even, odd;
    for (int64_t j = 0; j < VL; j++) {
        even[j] = (TI)(2 * j);
        odd[j] = (TI)(2 * j + 1);
    }
    T tail[4 * VL];
    for (int64_t oh = 0; oh < p; oh++) {
        /* the argmax's place in the plane */
#define POOL_INDEX(j) (indices[oh * q + ow + (j)] = (2 * oh + arg[j] / 2) * w + 2 * (ow + (j)) + arg[j] % 2)
        int64_t ow = 0;
        for (; fast && ow + VL <= q; ow += VL) {
            const T *r0 = x + 2 * oh * w + 2 * ow;
            VEC best;
            FN(ivec) arg;
            FN(pool_max4)(r0, r0 + w, even, odd, &best, &arg);
            *(VEC *)(y + oh * q + ow) = best;
            for (int64_t j = 0; indices && j < VL; j++)
                POOL_INDEX(j);
        }
        if (fast && ow < q) {
            const T *r0 = x + 2 * oh * w + 2 * ow, *r1 = r0 + w;
            const int64_t lanes = q - ow;
            VEC best;
            FN(ivec) arg;
            if ((2 * oh + 1) * w + 2 * ow + 2 * VL > h * w) {
                for (int v = 0; v < 4; v++)
                    *(VEC *)(tail + v * VL) = (VEC){0};
                FN(copy_row)(tail, r0, 2 * lanes);
                FN(copy_row)(tail + 2 * VL, r1, 2 * lanes);
                r0 = tail, r1 = tail + 2 * VL;
            }
            FN(pool_max4)(r0, r1, even, odd, &best, &arg);
            if (oh * q + ow + VL <= p * q) /* the lanes past the row go to the next rows, rewritten later */
                *(VEC *)(y + oh * q + ow) = best;
            else
                FN(copy_row)(y + oh * q + ow, (const T *)&best, lanes);
            for (int64_t j = 0; indices && j < lanes; j++)
                POOL_INDEX(j);
        }
#undef POOL_INDEX
        for (ow = 0; !fast && ow < q; ow++) {
            const int64_t h0 = oh * sh, w0 = ow * sw;
            int64_t arg = h0 * w + w0;
            T best = x[arg];
            for (int64_t i = 0; i < kh; i++)
                for (int64_t j = 0; j < kw; j++) {
                    const int64_t at = (h0 + i) * w + w0 + j;
                    if (x[at] > best || x[at] != x[at]) {
                        best = x[at];
                        arg = at;
                    }
                }
            y[oh * q + ow] = best;
            if (indices)
                indices[oh * q + ow] = arg;
        }
    }
}

int LOSSK_ISA_NAME(FN(lossk_max_pool2d_forward))(lossk_pool2d_args *a)
{
    if (FN(pool_check)(a) != LOSSK_OK || !a->input || !a->output)
        return LOSSK_ERR_ARGUMENT;
    if (a->n == 0 || a->c == 0) /* nothing to compute, and H W need not even fit in int64_t */
        return LOSSK_OK;
    const T *x = a->input;
    T *y = a->output;
    const int64_t planes = a->n * a->c, HW = a->h * a->w, PQ = a->p * a->q;
    const int nt = lossk_threads_for(planes * HW);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t pl = 0; pl < planes; pl++)
        FN(pool_plane)(x + pl * HW, a->h, a->w, a->kh, a->kw, a->stride_h, a->stride_w, a->p, a->q, y + pl * PQ,
                       a->indices ? a->indices + pl * PQ : NULL);
    return LOSSK_OK;
}

/* Backward of one plane of a max pooling whose (p, q) outputs have kh x kw windows at strides
 * (sh, sw) in an input plane w wide: plane[idx[i]] += g[i] (with plane NULL, only the check).
 * 1 at the first index outside its own output's window (the rest not added), else 0: an index
 * inside the plane but in another window would send the gradient to a pixel that output never
 * read. The check is the write's own read of the index: a separate pass first could not stop
 * another thread from changing the index between the check and the write. Inlined, so that
 * callers passing a constant geometry get the window test unrolled. */
LOSSK_INLINE int FN(scatter_add)(T *plane, const T *g, const int64_t *idx, int64_t w, int64_t kh, int64_t kw,
                                 int64_t sh, int64_t sw, int64_t p, int64_t q)
{
    for (int64_t oh = 0; oh < p; oh++)
        for (int64_t ow = 0; ow < q; ow++) {
            /* In the window when, for one of its rows, the offset from that row's start is below kw.
             * Unsigned, so that no index, however large or negative, overflows, and one before a
             * row's start wraps around to a huge offset. The smallest offset over the rows, not a
             * branch on which row holds the argmax (random, so mispredicted) nor a division by w,
             * which made max_pool2d's backward 2 and 1.5 times slower. Every window lies inside
             * the plane, so an index inside its window is too. */
            const int64_t at = READ_ONCE(idx[oh * q + ow]);
            uint64_t off = (uint64_t)at - (uint64_t)(oh * sh * w + ow * sw), row_off = off;
            for (int64_t row = 1; row < kh; row++) {
                row_off -= (uint64_t)w;
                off = row_off < off ? row_off : off;
            }
            if (off >= (uint64_t)kw)
                return 1;
            if (plane)
                plane[at] += g[oh * q + ow];
        }
    return 0;
}

int LOSSK_ISA_NAME(FN(lossk_max_pool2d_backward))(lossk_pool2d_args *a)
{
    if (FN(pool_check)(a) != LOSSK_OK || !a->grad_output || !a->grad_input || !a->indices)
        return LOSSK_ERR_ARGUMENT;
    if (a->n == 0 || a->c == 0) /* nothing to compute, and H W need not even fit in int64_t */
        return LOSSK_OK;
    const T *dy = a->grad_output;
    T *dx = a->grad_input;
    const int64_t planes = a->n * a->c, HW = a->h * a->w, PQ = a->p * a->q;
    const int nt = lossk_threads_for(planes * HW);
    /* the usual 2x2 windows at stride 2 as constants: their index check then costs next to nothing */
    const int fast = a->kh == 2 && a->kw == 2 && a->stride_h == 2 && a->stride_w == 2;
    int bad = 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
    for (int64_t pl = 0; pl < planes; pl++) {
        T *plane = dx + pl * HW;
        const T *g = dy + pl * PQ;
        const int64_t *idx = a->indices + pl * PQ;
        memset(plane, 0, sizeof(T) * HW); /* a plane at a time: the scatter then hits cache */
        bad |= fast ? FN(scatter_add)(plane, g, idx, a->w, 2, 2, 2, 2, a->p, a->q)
                    : FN(scatter_add)(plane, g, idx, a->w, a->kh, a->kw, a->stride_h, a->stride_w, a->p, a->q);
    }
    return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
}

/* ---- conv2d kernels -------------------------------------------------------------------------- */

/* Winograd's transforms exist for 3x3 and 5x5 kernels, stride 1, padding below the kernel size. */
static int FN(wino_fits)(const lossk_conv2d_args *a)
{
    return a->r == a->s && (a->r == 3 || a->r == 5) && a->stride_h == 1 && a->stride_w == 1 && a->pad_h < a->r
           && a->pad_w < a->s;
}

static int FN(conv_check)(const lossk_conv2d_args *a, int op)
{
    if (a->n < 0 || a->c < 1 || a->h < 0 || a->w < 0 || a->k < 1 || a->r < 1 || a->s < 1
        || a->stride_h < 1 || a->stride_w < 1 || a->pad_h < 0 || a->pad_w < 0
        || a->pad_h > (INT64_MAX - a->h) / 2 || a->pad_w > (INT64_MAX - a->w) / 2
        || a->h + 2 * a->pad_h < a->r || a->w + 2 * a->pad_w < a->s
        || a->p != (a->h + 2 * a->pad_h - a->r) / a->stride_h + 1
        || a->q != (a->w + 2 * a->pad_w - a->s) / a->stride_w + 1
        || a->algo < LOSSK_CONV_AUTO || a->algo > LOSSK_CONV_WINOGRAD)
        return LOSSK_ERR_ARGUMENT;
    if (a->algo == LOSSK_CONV_WINOGRAD && !FN(wino_fits)(a))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_FORWARD && (!a->input || !a->weight || !a->output))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_BACKWARD_INPUT && (!a->grad_output || !a->weight || !a->grad_input))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_BACKWARD_WEIGHT && (!a->input || !a->grad_output || !a->grad_weight))
        return LOSSK_ERR_ARGUMENT;
    if (a->pool && ((op != OP_FORWARD && !a->indices) || a->p % 2 || a->q % 2))
        return LOSSK_ERR_ARGUMENT;
    if (op == OP_BACKWARD_INPUT && a->pool && a->n > 0) {
        /* before anything is written, so that bad indices leave the caller's buffers untouched (an
         * empty batch has none, and its P Q might not even fit in int64_t). The weight gradient
         * needs no such pass: it finds them as it unpools (grad_images) and then adds nothing.
         * Each index tested against its 2x2 window (window_place), the verdict ORed over a
         * row so that the loop vectorises (this pass had taken 6.6% of the CIFAR-10
         * network's training step, one index at a time, also ahead of the weight gradients). */
        const int64_t rows = a->n * a->k * (a->p / 2), pq = a->q / 2, w = a->q;
        const int nt = lossk_threads_for(rows * pq);
        int bad = 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
        for (int64_t row = 0; row < rows; row++) {
            const int64_t *idx = a->indices + row * pq, oh = row % (a->p / 2);
            uint64_t outside = 0;
            for (int64_t ow = 0; ow < pq; ow++)
                window_place(idx[ow], 2 * oh * w + 2 * ow, w, &outside);
            bad |= outside != 0;
        }
        if (bad)
            return LOSSK_ERR_ARGUMENT;
    }
    return LOSSK_OK;
}

/* Winograd when asked, or when it applies and both channel counts are large enough for its
 * transforms to pay (the 3-channel first layer of an image network stays direct). A 3x3 kernel
 * saves less (4 or 5.06 times fewer multiplies, not 6.25), and its tiles may overshoot the output
 * by much (6x6 tiles take 12x12 for 7x7): it needs 16 channels and tiles at least 3/4 covered.
 * Measured against the direct kernel, batch 64, with F(6x6, 3x3): 12x12 and 16x16 images with 32
 * channels took 0.44-0.99 of the time, 8x8 (12x12 of tiles) with 64 channels 0.87-1.38, 32x32
 * with 8 channels 0.8-1.4. */
static int FN(conv_wino)(const lossk_conv2d_args *a)
{
    if (a->algo == LOSSK_CONV_WINOGRAD)
        return 1;
    if (a->algo != LOSSK_CONV_AUTO || !FN(wino_fits)(a))
        return 0;
    if (a->r == 5)
        return a->c >= 8 && a->k >= 8;
    const int64_t wo = FN(wino_tile)(3, a->p, a->q) - 2, ty = (a->p + wo - 1) / wo, tx = (a->q + wo - 1) / wo;
    return a->c >= 16 && a->k >= 16 && 4 * a->p * a->q >= 3 * wo * wo * ty * tx;
}

/* The geometry of the Winograd convolution an op runs: backward_input is a forward convolution
 * of grad_output with the flipped, transposed kernel and the complementary padding. */
static FN(wgeom) FN(conv_wgeom)(const lossk_conv2d_args *a, int op)
{
    if (op == OP_BACKWARD_INPUT)
        return FN(wino_geom)(a->n, a->k, a->p, a->q, a->c, a->h, a->w, a->r - 1 - a->pad_h, a->s - 1 - a->pad_w,
                             a->r, FN(wino_tile)(a->r, a->h, a->w));
    return FN(wino_geom)(a->n, a->c, a->h, a->w, a->k, a->p, a->q, a->pad_h, a->pad_w, a->r,
                         FN(wino_tile)(a->r, a->p, a->q));
}

/* grad_output of images [n, n + cnt): as given, or (pool) unpooled into buf: each pooled
 * gradient goes to its window's argmax, zeros elsewhere. NULL if an index is outside its window
 * (conv_check found none, but the caller may have changed them since). */
static const T *FN(grad_images)(const lossk_conv2d_args *a, int64_t n, int64_t cnt, T *buf)
{
    const int64_t PQ = a->p * a->q;
    if (!a->pool)
        return (const T *)a->grad_output + n * a->k * PQ;
    const T *g = (const T *)a->grad_output + n * a->k * PQ / 4;
    const int64_t *idx = a->indices + n * a->k * PQ / 4;
    memset(buf, 0, sizeof(T) * cnt * a->k * PQ);
    for (int64_t plane = 0; plane < cnt * a->k; plane++)
        if (FN(scatter_add)(buf + plane * PQ, g + plane * PQ / 4, idx + plane * PQ / 4, a->q, 2, 2, 2, 2, a->p / 2,
                            a->q / 2))
            return NULL;
    return buf;
}

/* The gradient of image n's 2x2 max-pooled output unpooled straight into a channels-last layout:
 * output pixel (y, x) at L + y l_rs + x l_cs holds KV channels (zero past K), what grad_images
 * and a relayout give with half the traffic. The argmax places (0-3 in the window) are found
 * into L itself, planar (as values of T), then go channels-last with the pooled gradient, a
 * quarter of the size each; each pooled pixel's channels then fill its window's four pixels: the
 * gradient at the argmax, 0 elsewhere. (A -0 stays -0, where grad_images' 0 + -0 gives +0; the
 * weight and bias gradients' sums start at +0, so neither can tell.) Each index is read once, by
 * the place pass. work: 2 (P/2 Q/2) KV elements. 1 if an index is outside its window (L then
 * holds garbage), else 0. */
static int FN(unpool_channels_last)(const lossk_conv2d_args *a, int64_t n, int64_t KV, T *L, int64_t l_rs,
                                    int64_t l_cs, T *work)
{
    const int64_t K = a->k, pp = a->p / 2, pq = a->q / 2, n4 = pp * pq, w = a->q;
    const T *g = (const T *)a->grad_output + n * K * n4;
    const int64_t *idx = a->indices + n * K * n4;
    T *planar = L, *gl = work, *places = work + n4 * KV;
    uint64_t outside = 0;
    for (int64_t row = 0; row < K * pp; row++) {
        const int64_t oh = row % pp;
        for (int64_t ow = 0; ow < pq; ow++)
            planar[row * pq + ow] = (T)window_place(idx[row * pq + ow], 2 * oh * w + 2 * ow, w, &outside);
    }
    if (outside)
        return 1;
    FN(relayout)(0, K, n4, planar, n4, places, n4, 0, KV);
    FN(relayout)(0, K, n4, (T *)g, n4, gl, n4, 0, KV);
    for (int64_t j = 0; KV > K && j < n4; j++)
        for (int64_t k = K; k < KV; k++)
            places[j * KV + k] = -1; /* no place: zeros in the channels past K (unused, but garbage there
                                      * might be denormals, which slow the multiplies) */
    for (int64_t oh = 0; oh < pp; oh++)
        for (int64_t ow = 0; ow < pq; ow++)
            for (int64_t v = 0; v < KV; v += VL) {
                const int64_t j = (oh * pq + ow) * KV + v;
                const FN(ivec) gv = *(const FN(ivec) *)(gl + j);
                const VEC at = *(const VEC *)(places + j);
                for (int e = 0; e < 4; e++)
                    *(VEC *)(L + (2 * oh + e / 2) * l_rs + (2 * ow + e % 2) * l_cs + v) = (VEC)(gv & (at == (T)e));
            }
    return 0;
}

/* dbias[k] += the sum of channel k of a channels-last P x Q gradient (as unpool_channels_last
 * lays it out), in sum's order over the planar plane: pixel i into lane i % VL, the lanes then
 * added in order, so that it has the bits of the bias gradient of the same gradient given planar. */
static void FN(bias_channels_last)(const lossk_conv2d_args *a, int64_t KV, const T *L, int64_t l_rs, int64_t l_cs,
                                   T *dbias)
{
    for (int64_t v = 0; v < KV; v += VL) {
        VEC lanes[VL];
        for (int64_t l = 0; l < VL; l++)
            lanes[l] = (VEC){0};
        for (int64_t y = 0, l = 0; y < a->p; y++)
            for (int64_t x = 0; x < a->q; x++, l = l + 1 == VL ? 0 : l + 1)
                lanes[l] += *(const VEC *)(L + y * l_rs + x * l_cs + v);
        for (int64_t k = v; k < lossk_min64(v + VL, a->k); k++) {
            T sum = 0;
            for (int64_t l = 0; l < VL; l++)
                sum += lanes[l][k - v];
            dbias[k] += sum;
        }
    }
}

/* Per-thread elements of a pooled backward pass's unpooled gradient: grad_images' planar images
 * of a group, or (the channel layout's weight gradient) unpool_channels_last's work. */
static int64_t FN(unpool_n)(const lossk_conv2d_args *a, int op)
{
    if (op == OP_FORWARD || !a->pool)
        return 0;
    const int64_t PQ = a->p * a->q;
    if (op == OP_BACKWARD_WEIGHT && !FN(conv_wino)(a) && FN(conv_layout)(a, op) == CONV_CHANNELS)
        return ALIGN_UP(PQ / 2 * FN(round_vl)(a->k));
    return ALIGN_UP(FN(conv_wgeom)(a, op).group * a->k * PQ);
}

/* Scratch of an op in elements: shared by all threads, and per thread. */
static void FN(conv_scratch)(const lossk_conv2d_args *a, int op, int64_t *shared, int64_t *per_thread)
{
    const int64_t PQ = a->p * a->q, nb = lossk_min64(a->n, WGRAD_BLOCKS);
    const int64_t unpool = FN(unpool_n)(a, op);
    if (FN(conv_wino)(a)) {
        FN(wgeom) g = FN(conv_wgeom)(a, op);
        int64_t xp_n, v_n, m_n;
        *per_thread = unpool + FN(wino_scratch)(&g, &xp_n, &v_n, &m_n);
        *shared = op == OP_BACKWARD_WEIGHT ? nb * ALIGN_UP(g.wf * g.cp * g.kp + a->k) : ALIGN_UP(g.wf * g.cp * g.kp + g.kp);
    } else {
        const int layout = FN(conv_layout)(a, op);
        const lossk_conv2d_args t = op == OP_BACKWARD_INPUT ? FN(conv_transposed)(a) : *a;
        const int64_t tables = t.c * t.r * t.s + FN(shifted_group)(a, op) * FN(shifted_outputs)(&t, layout); /* int64_t */
        *per_thread = unpool + FN(conv_image_n)(a, op) + (op == OP_FORWARD && a->pool ? ALIGN_UP(PQ * a->k) : 0);
        *shared = (op == OP_BACKWARD_WEIGHT ? nb * FN(wgrad_part_n)(a, layout) : FN(packed_n)(a, op, layout))
                  + (layout != CONV_IM2COL ? ALIGN_UP(tables * (int64_t)(sizeof(int64_t) / sizeof(T))) : 0);
    }
}

/* Checks the arguments and the scratch; returns the thread count to use (0: stop with *err).
 * Callers compute their sizes after it: before the checks, or in an empty batch (huge padding),
 * products such as P Q may not fit in int64_t. */
static int FN(conv_begin)(lossk_conv2d_args *a, int op, int *err, T **shared, T **threads, int64_t *per_thread)
{
    *err = FN(conv_check)(a, op);
    if (*err != LOSSK_OK)
        return 0;
    if (a->n == 0) { /* nothing to compute, and a large padding's scratch might not even fit in memory */
        if (!a->work)
            a->work_size = 0;
        return 0;
    }
    int64_t sh, pt;
    FN(conv_scratch)(a, op, &sh, &pt);
    const int max_nt = lossk_get_num_threads();
    if (!a->work) {
        a->work_size = (int64_t)sizeof(T) * (sh + max_nt * pt) + 64;
        return 0;
    }
    /* the thread count may have changed since the size query: use no more threads than fit */
    T *base = (T *)(((uintptr_t)a->work + 63) & ~(uintptr_t)63);
    const int64_t avail = (a->work_size - ((char *)base - (char *)a->work)) / (int64_t)sizeof(T) - sh;
    int nt = lossk_threads_for(a->n * a->k * (a->c * a->r * a->s) * (a->p * a->q));
    if (nt > a->n && op != OP_BACKWARD_WEIGHT)
        nt = a->n > 0 ? (int)a->n : 1;
    if (avail < pt || a->work_size < 0) {
        *err = LOSSK_ERR_ARGUMENT;
        return 0;
    }
    if (nt > avail / pt)
        nt = (int)(avail / pt);
    *shared = base;
    *threads = base + sh;
    *per_thread = pt;
    return nt;
}

int LOSSK_ISA_NAME(FN(lossk_conv2d_forward))(lossk_conv2d_args *a)
{
    int err;
    T *shared, *scratch;
    int64_t pt;
    const int nt = FN(conv_begin)(a, OP_FORWARD, &err, &shared, &scratch, &pt);
    if (!nt)
        return err;
    const int64_t PQ = a->p * a->q, L = a->c * a->r * a->s;
    const T *x = a->input, *w = a->weight, *bias = a->bias;
    T *y = a->output;
    const int64_t ysize = a->pool ? a->k * PQ / 4 : a->k * PQ;
    if (FN(conv_wino)(a)) {
        const FN(wgeom) g = FN(conv_wgeom)(a, OP_FORWARD);
        FN(wino_weights)(&g, w, a->c * a->r * a->s, a->r * a->s, 0, bias, shared, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int64_t n = 0; n < a->n; n += g.group)
            FN(wino_group)(&g, lossk_min64(g.group, a->n - n), x + n * a->c * a->h * a->w, shared, bias != NULL,
                           y + n * ysize, ysize, a->pool, a->indices ? a->indices + n * ysize : NULL,
                           scratch + THREAD_ID() * pt);
        return LOSSK_OK;
    }
    const int layout = FN(conv_layout)(a, OP_FORWARD);
    const int64_t buf_n = FN(conv_image_n)(a, OP_FORWARD);
    T *packed = shared; /* CONV_CHANNELS: the kernel transposed, and the bias */
    int64_t *boff = (int64_t *)(shared + FN(packed_n)(a, OP_FORWARD, layout)), *voff = boff + L;
    if (layout != CONV_IM2COL)
        FN(shifted_offsets)(a, layout, 1, boff, voff);
    if (layout == CONV_CHANNELS)
        FN(pack_kernel)(a, 0, layout, w, bias, packed);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t n = 0; n < a->n; n++) {
        T *buf = scratch + THREAD_ID() * pt, *yn = a->pool ? buf + buf_n : y + n * ysize;
        const T *xn = x + n * a->c * a->h * a->w;
        if (layout != CONV_IM2COL) {
            FN(conv_image_shifted)(a, layout, xn, layout == CONV_CHANNELS ? packed : w, bias, boff, voff, buf, yn);
        } else {
            FN(im2col)(a, xn, buf);
            for (int64_t k = 0; k < a->k; k++)
                for (int64_t i = 0; i < PQ; i++)
                    yn[k * PQ + i] = bias ? bias[k] : 0;
            FN(gemm)(a->k, PQ, L, w, L, 1, buf, FN(col_ld)(a), yn, PQ, 1);
        }
        for (int64_t k = 0; a->pool && k < a->k; k++) /* pooled while the image is in cache */
            FN(pool_plane)(yn + k * PQ, a->p, a->q, 2, 2, 2, 2, a->p / 2, a->q / 2, y + n * ysize + k * PQ / 4,
                           a->indices ? a->indices + n * ysize + k * PQ / 4 : NULL);
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_conv2d_backward_input))(lossk_conv2d_args *a)
{
    int err;
    T *shared, *scratch;
    int64_t pt;
    const int nt = FN(conv_begin)(a, OP_BACKWARD_INPUT, &err, &shared, &scratch, &pt);
    if (!nt)
        return err;
    const int64_t PQ = a->p * a->q, L = a->c * a->r * a->s, HW = a->h * a->w;
    const T *w = a->weight;
    T *dx = a->grad_input;
    const int64_t unpool = FN(unpool_n)(a, OP_BACKWARD_INPUT);
    int bad = 0;
    if (FN(conv_wino)(a)) {
        const FN(wgeom) g = FN(conv_wgeom)(a, OP_BACKWARD_INPUT);
        FN(wino_weights)(&g, w, a->r * a->s, a->c * a->r * a->s, 1, NULL, shared, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
        for (int64_t n = 0; n < a->n; n += g.group) {
            T *tw = scratch + THREAD_ID() * pt;
            const int64_t cnt = lossk_min64(g.group, a->n - n);
            const T *dy = FN(grad_images)(a, n, cnt, tw);
            if (dy)
                FN(wino_group)(&g, cnt, dy, shared, 0, dx + n * a->c * HW, a->c * HW, 0, NULL, tw + unpool);
            bad |= !dy;
        }
        return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
    }
    const int layout = FN(conv_layout)(a, OP_BACKWARD_INPUT);
    const lossk_conv2d_args t = FN(conv_transposed)(a);
    const int64_t K = a->k, C = a->c;
    T *wt = shared; /* the transposed convolution's kernel: w's flipped */
    int64_t *boff = (int64_t *)(shared + FN(packed_n)(a, OP_BACKWARD_INPUT, layout)), *voff = boff + K * a->r * a->s;
    if (layout != CONV_IM2COL) {
        FN(pack_kernel)(a, 1, layout, w, NULL, wt);
        FN(shifted_offsets)(&t, layout, 1, boff, voff);
    }
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : bad)
    for (int64_t n = 0; n < a->n; n++) {
        T *tw = scratch + THREAD_ID() * pt, *dcol = tw + unpool;
        const T *dy = FN(grad_images)(a, n, 1, tw);
        if (dy && layout != CONV_IM2COL) {
            FN(conv_image_shifted)(&t, layout, dy, wt, NULL, boff, voff, dcol, dx + n * C * HW);
        } else if (dy) {
            FN(gemm)(L, PQ, K, w, 1, L, dy, PQ, dcol, FN(col_ld)(a), 0);
            FN(col2im)(a, dcol, dx + n * C * HW);
        }
        bad |= !dy;
    }
    return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_conv2d_backward_weight))(lossk_conv2d_args *a)
{
    int err;
    T *shared, *scratch;
    int64_t pt;
    const int nt = FN(conv_begin)(a, OP_BACKWARD_WEIGHT, &err, &shared, &scratch, &pt);
    if (!nt)
        return err;
    const int64_t PQ = a->p * a->q, L = a->c * a->r * a->s, C = a->c, K = a->k, RS = a->r * a->s;
    const T *x = a->input;
    T *dw = a->grad_weight, *db = a->grad_bias;
    const int wino = FN(conv_wino)(a);
    const FN(wgeom) g = FN(conv_wgeom)(a, OP_BACKWARD_WEIGHT);
    const int64_t unpool = FN(unpool_n)(a, OP_BACKWARD_WEIGHT);
    const int layout = wino ? CONV_IM2COL : FN(conv_layout)(a, OP_BACKWARD_WEIGHT);
    /* a pooled gradient for the channel layout goes there straight from its pooled form: 0.82-0.85
     * of the time of the CIFAR-10 network's first layer's weight gradient (Winograd's relayout into
     * its tiles gained nothing from it) */
    const int cl = a->pool && layout == CONV_CHANNELS;
    const int64_t nb = lossk_min64(a->n, WGRAD_BLOCKS);
    const int64_t part_n = wino ? ALIGN_UP(g.wf * g.cp * g.kp + K) : FN(wgrad_part_n)(a, layout);
    int64_t xp_n, v_n, m_n;
    FN(wino_scratch)(&g, &xp_n, &v_n, &m_n);
    const int64_t sg = FN(shifted_group)(a, OP_BACKWARD_WEIGHT), xpn = FN(shifted_xp_n)(a), KV = FN(round_vl)(K);
    /* element (k, (c, r, s)) of a partial */
    const int64_t pk = layout == CONV_CHANNELS ? 1 : L, pl = layout == CONV_CHANNELS ? KV : 1;
    int64_t *boff = (int64_t *)(shared + nb * part_n), *voff = boff + L;
    if (layout != CONV_IM2COL)
        FN(shifted_offsets)(a, layout, sg, boff, voff);
    int bad = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *dybuf = scratch + THREAD_ID() * pt, *tw = dybuf + unpool;
#pragma omp for schedule(static) reduction(| : bad)
        for (int64_t b = 0; b < nb; b++) {
            T *part = shared + b * part_n, *dbias = part + part_n - K;
            const int64_t n0 = a->n * b / nb, n1 = a->n * (b + 1) / nb;
            for (int64_t k = 0; k < K; k++)
                dbias[k] = 0;
            for (int64_t n = n0; n < n1; n++) {
                const T *xn = x + n * C * a->h * a->w, *dyn = cl ? NULL : FN(grad_images)(a, n, 1, dybuf);
                if (!cl && !dyn) {
                    bad = 1;
                    break;
                }
                if (wino) {
                    /* a group of images at a time: GEMMs with group * nt rows of tiles */
                    T *V = tw + xp_n, *dM = V + v_n;
                    const int64_t gi = (n - n0) % g.group, last = gi + 1 == g.group || n + 1 == n1;
                    FN(wino_input)(&g, xn, tw, V + gi * g.nt * g.wf * g.cp);
                    FN(wino_grad_output)(&g, dyn, dM + m_n, dM + gi * g.nt * g.wf * g.kp);
                    if (last)
                        for (int64_t e = 0; e < g.wf; e++)
                            FN(gemm)(g.cp, g.kp, (gi + 1) * g.nt, V + e * g.cp, 1, g.wf * g.cp, dM + e * g.kp,
                                     g.wf * g.kp, part + e * g.cp * g.kp, g.kp, n - gi > n0);
                } else if (layout != CONV_IM2COL) {
                    T *dyg = tw + sg * xpn; /* (K, sg PQ), a group of one reading dyn itself; or (sg PQ, KV) */
                    const int64_t gi = (n - n0) % sg, last = gi + 1 == sg || n + 1 == n1;
                    FN(pad_image)(a, xn, tw + gi * xpn);
                    if (layout == CONV_CHANNELS) {
                        T *rows = dyg + gi * PQ * KV;
                        if (cl && FN(unpool_channels_last)(a, n, KV, rows, a->q * KV, KV, dybuf)) {
                            bad = 1;
                            break;
                        }
                        if (cl)
                            FN(bias_channels_last)(a, KV, rows, a->q * KV, KV, dbias);
                        else
                            FN(relayout)(0, K, PQ, (T *)dyn, PQ, rows, PQ, 0, KV);
                        for (int64_t j = 0; !cl && KV > K && j < PQ; j++)
                            memset(rows + j * KV + K, 0, sizeof(T) * (KV - K));
                        if (last)
                            FN(gemm_ashifted)(L, KV, (gi + 1) * PQ, tw, boff, voff, dyg, KV, part, KV, n - gi > n0);
                    } else {
                        const int64_t QV = FN(shifted_qv)(a), PQV = a->p * QV, staged = sg > 1 || QV != a->q;
                        for (int64_t k = 0; staged && k < K; k++)
                            for (int64_t oh = 0; oh < a->p; oh++) {
                                T *row = dyg + ((k * sg + gi) * a->p + oh) * QV;
                                FN(copy_row)(row, dyn + (k * a->p + oh) * a->q, a->q);
                                for (int64_t j = a->q; j < QV; j++)
                                    row[j] = -(T)0; /* times the masked 0: -0, which changes no sum */
                            }
                        if (last)
                            FN(gemm_nt)(K, L, (gi + 1) * PQV, staged ? dyg : dyn, sg * PQV, tw, 0, boff, voff,
                                        QV != a->q ? QV / VL : 0, a->q % VL, part, L, n - gi > n0);
                    }
                } else {
                    FN(im2col)(a, xn, tw);
                    FN(gemm_nt)(K, L, PQ, dyn, PQ, tw, FN(col_ld)(a), NULL, NULL, 0, 0, part, L, n > n0);
                }
                for (int64_t k = 0; !cl && k < K; k++)
                    dbias[k] += FN(sum)(dyn + k * PQ, PQ);
            }
        }
        /* partials added in block order; Winograd's are in the transformed domain. After a bad
         * index they are incomplete: grad_weight and grad_bias stay as they were. */
        if (!wino) {
            /* in the partials' own order (CONV_CHANNELS: (C R S, KV)), as they outgrow the caches:
             * 128 -> 128 channels, 3x3, spent 69% of its 4.2 ms in this sum read across its rows */
            const int chan = layout == CONV_CHANNELS;
#pragma omp for schedule(static)
            for (int64_t o = 0; o < (bad ? 0 : chan ? L : K); o++)
                for (int64_t i = 0; i < (chan ? K : L); i++) {
                    const int64_t k = chan ? i : o, l = chan ? o : i;
                    T sum = 0;
                    for (int64_t b = 0; b < nb; b++)
                        sum += shared[b * part_n + k * pk + l * pl];
                    dw[k * L + l] += sum;
                }
        } else {
            /* the blocks' sums into the first block's partial, in memory order (read across the
             * frequencies they had taken 3.4% of the CIFAR-10 network's training step) */
#pragma omp for schedule(static)
            for (int64_t v = 0; v < (bad ? 0 : g.wf * g.cp * g.kp / VL); v++) {
                VEC sum = (VEC){0};
                for (int64_t b = 0; b < nb; b++)
                    sum += *(const VEC *)(shared + b * part_n + v * VL);
                *(VEC *)(shared + v * VL) = sum;
            }
#pragma omp for schedule(static)
            for (int64_t kc = 0; kc < (bad ? 0 : K * C); kc++) {
                const int64_t k = kc / C, c = kc % C;
                if (k % VL)
                    continue; /* one vector of output channels at a time */
                VEC sum[WF], out[25];
                for (int64_t e = 0; e < g.wf; e++)
                    sum[e] = *(const VEC *)(shared + (e * g.cp + c) * g.kp + k);
                if (a->r == 5)
                    SEPARABLE(FN(wt_gt), 8, 5, 8, 5, sum, 8, 1, out);
                else if (g.wt == 8)
                    SEPARABLE(FN(wt_gt), 8, 3, 8, 3, sum, 8, 1, out);
                else
                    SEPARABLE(FN(wt_gt), 6, 3, 6, 3, sum, 6, 1, out);
                for (int64_t j = 0; j < VL && k + j < K; j++)
                    for (int64_t e = 0; e < RS; e++)
                        dw[((k + j) * C + c) * RS + e] += out[e][j];
            }
        }
#pragma omp single
        if (db && !bad)
            for (int64_t k = 0; k < K; k++) {
                T sum = 0;
                for (int64_t b = 0; b < nb; b++)
                    sum += shared[b * part_n + part_n - K + k];
                db[k] += sum;
            }
    }
    return bad ? LOSSK_ERR_ARGUMENT : LOSSK_OK;
}

/* ---- linear ---------------------------------------------------------------------------------- */

/* The weight is read as it is, in dot products along I (gemm_nt), when I >= 4 N; else transposed
 * once for the outer-product GEMM, which needs no horizontal sums but pays O I for the transpose:
 * (64, 400) x (120, 400) took 24 us one way and 65 the other, (64, 120) x (84, 120) 21 and 13. */
int LOSSK_ISA_NAME(FN(lossk_linear_forward))(lossk_linear_args *a)
{
    if (a->n < 0 || a->in < 1 || a->out < 1 || !a->input || !a->weight || !a->output)
        return LOSSK_ERR_ARGUMENT;
    const int64_t N = a->n, I = a->in, O = a->out;
    const int dots = I >= 4 * N;
    const int64_t work_size = dots ? 0 : (int64_t)sizeof(T) * I * O;
    if (!a->work) {
        a->work_size = work_size;
        return LOSSK_OK;
    }
    if (a->work_size < work_size)
        return LOSSK_ERR_ARGUMENT;
    const T *x = a->input, *w = a->weight, *bias = a->bias;
    T *y = a->output, *wt = a->work;
    const int nt = lossk_threads_for(N * I * O / 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = THREAD_ID(), nth = NUM_THREADS();
        if (!dots) {
            const product_part s = split_product(I, 0, 1, t, nth);
            FN(transpose)(O, s.r1 - s.r0, w + s.r0, I, wt + s.r0 * O, O);
        }
        const product_part p = split_product(N, O, dots ? NT_NR : VL, t, nth);
        for (int64_t i = p.r0; i < p.r1; i++)
            for (int64_t o = p.c0; o < p.c1; o++)
                y[i * O + o] = bias ? bias[o] : 0;
        if (dots)
            FN(gemm_nt)(p.r1 - p.r0, p.c1 - p.c0, I, x + p.r0 * I, I, w + p.c0 * I, I, NULL, NULL, 0, 0,
                        y + p.r0 * O + p.c0, O, 1);
        else {
#pragma omp barrier
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, I, x + p.r0 * I, I, 1, wt + p.c0, O, y + p.r0 * O + p.c0, O, 1);
        }
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_linear_backward))(lossk_linear_args *a)
{
    if (a->n < 0 || a->in < 1 || a->out < 1 || !a->grad_output || (a->grad_input && !a->weight)
        || (a->grad_weight && !a->input))
        return LOSSK_ERR_ARGUMENT;
    if (!a->work) {
        a->work_size = 0;
        return LOSSK_OK;
    }
    const int64_t I = a->in, O = a->out, N = a->n;
    const T *x = a->input, *w = a->weight, *dy = a->grad_output;
    T *dx = a->grad_input, *dw = a->grad_weight, *db = a->grad_bias;
    const int nt = lossk_threads_for(N * I * O / 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = THREAD_ID(), nth = NUM_THREADS();
        if (dx) {
            const product_part p = split_product(N, I, VL, t, nth);
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, O, dy + p.r0 * O, O, 1, w + p.c0, I, dx + p.r0 * I + p.c0, I, 0);
        }
        if (dw) {
            const product_part p = split_product(O, I, VL, t, nth);
            FN(gemm)(p.r1 - p.r0, p.c1 - p.c0, N, dy + p.r0, 1, O, x + p.c0, I, dw + p.r0 * I + p.c0, I, 1);
        }
        if (db) {
            const product_part p = split_product(O, 0, 1, t, nth);
            for (int64_t o = p.r0; o < p.r1; o++) {
                T sum = 0;
                for (int64_t i = 0; i < N; i++)
                    sum += dy[i * O + o];
                db[o] += sum;
            }
        }
    }
    return LOSSK_OK;
}

/* ---- relu ------------------------------------------------------------------------------------ */

int LOSSK_ISA_NAME(FN(lossk_relu_forward))(lossk_relu_args *a)
{
    if (a->n < 0 || !a->input || !a->output)
        return LOSSK_ERR_ARGUMENT;
    const T *restrict x = a->input;
    T *restrict y = a->output;
    const int nt = lossk_threads_for(a->n / 4);
    /* `if (parallel : ...)`: a plain `if` applies to the simd construct too, and below the
     * threads' threshold it ran one element at a time (3.5 ns each, 20 times NumPy's maximum);
     * nan passes, as in PyTorch */
#pragma omp parallel for simd schedule(static) num_threads(nt) if (parallel : nt > 1)
    for (int64_t i = 0; i < a->n; i++) {
        const T v = x[i];
        y[i] = (v > 0) | (v != v) ? v : 0;
    }
    return LOSSK_OK;
}

int LOSSK_ISA_NAME(FN(lossk_relu_backward))(lossk_relu_args *a)
{
    if (a->n < 0 || !a->output || !a->grad_output || !a->grad_input)
        return LOSSK_ERR_ARGUMENT;
    const T *restrict y = a->output, *restrict dy = a->grad_output;
    T *restrict dx = a->grad_input;
    const int nt = lossk_threads_for(a->n / 4);
#pragma omp parallel for simd schedule(static) num_threads(nt) if (parallel : nt > 1)
    for (int64_t i = 0; i < a->n; i++)
        dx[i] = y[i] <= 0 ? 0 : dy[i];
    return LOSSK_OK;
}

#undef SEPARABLE
#undef WT
#undef WF
#undef VEC
#undef VL
#undef FN
