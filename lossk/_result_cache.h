/* A NumPy memory handler (NEP 49) that keeps freed large result arrays for the next call.
 *
 * A large array NumPy allocates comes from mmap, and its first write faults in pages the kernel
 * must zero: for a 67 MB gradient that costs about as much as computing it. A training loop asks
 * for the same sizes at every step, so the bindings allocate their large results (gradients,
 * per-element losses) through this handler; when such an array dies, its block waits here, and
 * the next request of exactly that size takes it back, already faulted in. At most SLOTS blocks
 * and `limit` bytes wait; the oldest go first.
 *
 * Each block starts with a header holding its size: the size NumPy passes to free is not always
 * the block's (a failed ndarray.__setstate__ leaves an array reporting more bytes than it owns),
 * and a block handed out again must be as large as promised. The lock is never held across a
 * call that can block (a large free unmaps), and fork() happens with it unlocked. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <numpy/arrayobject.h>

#define LOSSK_CACHE_SLOTS 8
#define LOSSK_CACHE_MIN_BYTES ((size_t)1 << 20)       /* smaller blocks: malloc reuses them anyway */
#define LOSSK_CACHE_DEFAULT_LIMIT ((size_t)512 << 20)
#define LOSSK_CACHE_HEADER ((size_t)64)              /* the size, and the data as aligned as malloc's */
#define LOSSK_HUGEPAGE_MIN_BYTES ((size_t)4 << 20)    /* as NumPy: madvise huge pages from here */

static struct {
    pthread_mutex_t lock;
    size_t limit, held; /* bytes */
    int n;              /* slots in use, oldest first */
    void *ptr[LOSSK_CACHE_SLOTS];
    size_t size[LOSSK_CACHE_SLOTS];
    int hugepages;      /* NumPy's own setting (numpy._core.multiarray._get_madvise_hugepage) */
} lossk_cache = {PTHREAD_MUTEX_INITIALIZER, LOSSK_CACHE_DEFAULT_LIMIT, 0, 0, {0}, {0}, 1};

static char *lossk_cache_base(void *ptr) { return (char *)ptr - LOSSK_CACHE_HEADER; }
static size_t lossk_cache_size_of(void *ptr) { return *(size_t *)lossk_cache_base(ptr); }

/* The data of a new block of `size` bytes from base (NULL stays NULL). */
static void *lossk_cache_data(char *base, size_t size)
{
    if (!base)
        return NULL;
    *(size_t *)base = size;
    return base + LOSSK_CACHE_HEADER;
}

static void *lossk_cache_take(int i) /* lock held: slot i out of the cache */
{
    void *p = lossk_cache.ptr[i];
    lossk_cache.held -= lossk_cache.size[i];
    lossk_cache.n--;
    for (int j = i; j < lossk_cache.n; j++) {
        lossk_cache.ptr[j] = lossk_cache.ptr[j + 1];
        lossk_cache.size[j] = lossk_cache.size[j + 1];
    }
    return p;
}

/* Keeps ptr, a freed block (NULL: none), if it fits, and drops the oldest blocks until the rest
 * fit within the limit, or within `bound` if that is lower; with new_limit, the limit becomes
 * *new_limit first and *new_limit gets the old one back. The blocks that go (ptr among them if
 * it was not kept, at most SLOTS + 1 in all) are put into out, to be freed after the unlock. */
static int lossk_cache_fit(void *ptr, size_t *new_limit, size_t bound, void **out)
{
    int n_out = 0;
    pthread_mutex_lock(&lossk_cache.lock);
    if (new_limit) {
        const size_t old = lossk_cache.limit;
        lossk_cache.limit = *new_limit;
        *new_limit = old;
    }
    const size_t limit = lossk_cache.limit < bound ? lossk_cache.limit : bound;
    const size_t size = ptr ? lossk_cache_size_of(ptr) : 0;
    const int keep = ptr && size >= LOSSK_CACHE_MIN_BYTES && size <= limit;
    while (lossk_cache.n > 0 && (lossk_cache.held + (keep ? size : 0) > limit
                                 || (keep && lossk_cache.n == LOSSK_CACHE_SLOTS)))
        out[n_out++] = lossk_cache_take(0);
    if (keep) {
        lossk_cache.ptr[lossk_cache.n] = ptr;
        lossk_cache.size[lossk_cache.n++] = size;
        lossk_cache.held += size;
    } else if (ptr) {
        out[n_out++] = ptr;
    }
    pthread_mutex_unlock(&lossk_cache.lock);
    return n_out;
}

static void lossk_cache_free_blocks(void **blocks, int n)
{
    for (int i = 0; i < n; i++)
        free(lossk_cache_base(blocks[i]));
}

static void lossk_cache_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx; (void)size; /* the header's size is the block's */
    void *out[LOSSK_CACHE_SLOTS + 1];
    if (ptr)
        lossk_cache_free_blocks(out, lossk_cache_fit(ptr, NULL, SIZE_MAX, out));
}

static void lossk_cache_drop_all(void)
{
    void *out[LOSSK_CACHE_SLOTS + 1];
    lossk_cache_free_blocks(out, lossk_cache_fit(NULL, NULL, 0, out));
}

/* base = alloc() for a block of size bytes; when that fails, the cached blocks are freed first
 * and it is tried once more. */
#define LOSSK_CACHE_ALLOC(base, size, alloc) \
    do { \
        (base) = (size) <= SIZE_MAX - LOSSK_CACHE_HEADER ? (alloc) : NULL; \
        if (!(base) && (size) <= SIZE_MAX - LOSSK_CACHE_HEADER) { \
            lossk_cache_drop_all(); \
            (base) = (alloc); \
        } \
    } while (0)

static void *lossk_cache_malloc(void *ctx, size_t size)
{
    (void)ctx;
    void *p = NULL;
    pthread_mutex_lock(&lossk_cache.lock);
    for (int i = lossk_cache.n - 1; i >= 0 && !p; i--) /* the newest first: warmest in cache */
        if (lossk_cache.size[i] == size)
            p = lossk_cache_take(i);
    pthread_mutex_unlock(&lossk_cache.lock);
    if (p)
        return p;
    char *base;
    LOSSK_CACHE_ALLOC(base, size, malloc(size + LOSSK_CACHE_HEADER));
#ifdef MADV_HUGEPAGE
    if (base && lossk_cache.hugepages && size >= LOSSK_HUGEPAGE_MIN_BYTES) {
        /* the whole pages inside the block, as NumPy's own allocator does */
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t start = ((uintptr_t)base + page - 1) & ~(page - 1);
        const uintptr_t end = ((uintptr_t)base + LOSSK_CACHE_HEADER + size) & ~(page - 1);
        if (end > start)
            madvise((void *)start, end - start, MADV_HUGEPAGE);
    }
#endif
    return lossk_cache_data(base, size);
}

static void *lossk_cache_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    if (elsize && nelem > SIZE_MAX / elsize)
        return NULL;
    const size_t size = nelem * elsize;
    char *base;
    LOSSK_CACHE_ALLOC(base, size, calloc(1, size + LOSSK_CACHE_HEADER));
    return lossk_cache_data(base, size);
}

static void *lossk_cache_realloc(void *ctx, void *ptr, size_t new_size)
{
    if (!ptr)
        return lossk_cache_malloc(ctx, new_size);
    char *base;
    LOSSK_CACHE_ALLOC(base, new_size, realloc(lossk_cache_base(ptr), new_size + LOSSK_CACHE_HEADER));
    return lossk_cache_data(base, new_size);
}

static PyDataMem_Handler lossk_cache_handler = {
    "lossk_result_cache",
    1,
    {NULL, lossk_cache_malloc, lossk_cache_calloc, lossk_cache_realloc, lossk_cache_free},
};

static PyObject *lossk_cache_capsule(void)
{
    return PyCapsule_New(&lossk_cache_handler, "mem_handler", NULL);
}

/* Sets the limit in bytes (0: no caching), frees what no longer fits, returns the old limit. */
static size_t lossk_cache_set_limit(size_t limit)
{
    void *out[LOSSK_CACHE_SLOTS + 1];
    lossk_cache_free_blocks(out, lossk_cache_fit(NULL, &limit, SIZE_MAX, out));
    return limit; /* the old one */
}

static size_t lossk_cache_held(void)
{
    pthread_mutex_lock(&lossk_cache.lock);
    const size_t held = lossk_cache.held;
    pthread_mutex_unlock(&lossk_cache.lock);
    return held;
}

static void lossk_cache_set_hugepages(int on) { lossk_cache.hugepages = on; }

static void lossk_cache_lock(void) { pthread_mutex_lock(&lossk_cache.lock); }
static void lossk_cache_unlock(void) { pthread_mutex_unlock(&lossk_cache.lock); }

/* Called once, at import: fork() waits for the lock, so that a child never inherits a cache
 * halfway through a change. */
static int lossk_cache_init(void)
{
    return pthread_atfork(lossk_cache_lock, lossk_cache_unlock, lossk_cache_unlock);
}
