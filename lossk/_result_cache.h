/* A NumPy memory handler (NEP 49) that keeps freed large result arrays for the next call.
 *
 * A large array NumPy allocates comes from mmap, and its first write faults in pages the kernel
 * must zero: for a 67 MB gradient that costs about as much as computing it. A training loop asks
 * for the same sizes at every step, so the bindings allocate their large results (gradients,
 * per-element losses) through this handler; when such an array dies, its block waits here, and
 * the next request of exactly that size takes it back, already faulted in. At most SLOTS blocks
 * and `limit` bytes wait; the oldest go first. Blocks are plain malloc blocks, so realloc and
 * free work on them as on NumPy's own. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <numpy/arrayobject.h>

#define LOSSK_CACHE_SLOTS 8
#define LOSSK_CACHE_MIN_BYTES ((size_t)1 << 20)       /* smaller blocks: malloc reuses them anyway */
#define LOSSK_CACHE_DEFAULT_LIMIT ((size_t)512 << 20)
#define LOSSK_HUGEPAGE_MIN_BYTES ((size_t)4 << 20)    /* as NumPy: madvise huge pages from here */

static struct {
    pthread_mutex_t lock;
    size_t limit, held; /* bytes */
    int n;              /* slots in use, oldest first */
    void *ptr[LOSSK_CACHE_SLOTS];
    size_t size[LOSSK_CACHE_SLOTS];
} lossk_cache = {PTHREAD_MUTEX_INITIALIZER, LOSSK_CACHE_DEFAULT_LIMIT, 0, 0, {0}, {0}};

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
    p = malloc(size);
#ifdef MADV_HUGEPAGE
    if (p && size >= LOSSK_HUGEPAGE_MIN_BYTES) {
        /* the whole pages inside the block, as NumPy's own allocator does */
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
        const uintptr_t end = ((uintptr_t)p + size) & ~(page - 1);
        if (end > start)
            madvise((void *)start, end - start, MADV_HUGEPAGE);
    }
#endif
    return p;
}

static void *lossk_cache_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return calloc(nelem, elsize);
}

static void *lossk_cache_realloc(void *ctx, void *ptr, size_t new_size)
{
    (void)ctx;
    return realloc(ptr, new_size);
}

static void lossk_cache_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (!ptr)
        return;
    pthread_mutex_lock(&lossk_cache.lock);
    if (size >= LOSSK_CACHE_MIN_BYTES && size <= lossk_cache.limit) {
        while (lossk_cache.n == LOSSK_CACHE_SLOTS || lossk_cache.held + size > lossk_cache.limit)
            free(lossk_cache_take(0));
        lossk_cache.ptr[lossk_cache.n] = ptr;
        lossk_cache.size[lossk_cache.n++] = size;
        lossk_cache.held += size;
        ptr = NULL;
    }
    pthread_mutex_unlock(&lossk_cache.lock);
    free(ptr);
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
    pthread_mutex_lock(&lossk_cache.lock);
    const size_t old = lossk_cache.limit;
    lossk_cache.limit = limit;
    while (lossk_cache.held > limit)
        free(lossk_cache_take(0));
    pthread_mutex_unlock(&lossk_cache.lock);
    return old;
}

static size_t lossk_cache_held(void)
{
    pthread_mutex_lock(&lossk_cache.lock);
    const size_t held = lossk_cache.held;
    pthread_mutex_unlock(&lossk_cache.lock);
    return held;
}
