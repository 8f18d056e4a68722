/* A NumPy memory handler (NEP 49) that keeps freed large result arrays for the next call.
 *
 * A large array NumPy allocates comes from mmap, and its first write faults in pages the kernel
 * must zero: for a 67 MB gradient that costs about as much as computing it. A training loop asks
 * for the same sizes at every step, so the bindings allocate their large results (gradients,
 * per-element losses) through this handler; when such an array dies, its block waits here, and
 * the next request of exactly that size takes it back, already faulted in. At most SLOTS blocks
 * and `limit` bytes wait; the oldest go first. Blocks are plain malloc blocks, so realloc and
 * free work on them as on NumPy's own. The lock is never held across a call that can block (a
 * large free unmaps), and a child process after fork() starts with it unlocked. */
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

/* Keeps ptr, a freed block of `size` bytes (NULL: none), if it fits, and drops the oldest blocks
 * until the rest fit within the limit; with new_limit, the limit becomes *new_limit first and
 * *new_limit gets the old one back. The blocks that go (ptr among them if it was not kept, at
 * most SLOTS + 1 in all) are put into out, to be freed once the lock is released. */
static int lossk_cache_fit(void *ptr, size_t size, size_t *new_limit, void **out)
{
    int n_out = 0;
    pthread_mutex_lock(&lossk_cache.lock);
    if (new_limit) {
        const size_t old = lossk_cache.limit;
        lossk_cache.limit = *new_limit;
        *new_limit = old;
    }
    const size_t limit = lossk_cache.limit;
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

static void lossk_cache_free_all(void **blocks, int n)
{
    for (int i = 0; i < n; i++)
        free(blocks[i]);
}

static void lossk_cache_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    void *out[LOSSK_CACHE_SLOTS + 1];
    if (ptr)
        lossk_cache_free_all(out, lossk_cache_fit(ptr, size, NULL, out));
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
    lossk_cache_free_all(out, lossk_cache_fit(NULL, 0, &limit, out));
    return limit; /* the old one */
}

static size_t lossk_cache_held(void)
{
    pthread_mutex_lock(&lossk_cache.lock);
    const size_t held = lossk_cache.held;
    pthread_mutex_unlock(&lossk_cache.lock);
    return held;
}

static void lossk_cache_after_fork_in_child(void)
{
    pthread_mutex_init(&lossk_cache.lock, NULL);
}

/* Called once, at import. */
static int lossk_cache_init(void)
{
    return pthread_atfork(NULL, NULL, lossk_cache_after_fork_in_child);
}
