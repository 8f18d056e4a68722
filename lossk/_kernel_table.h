/* The kernels of src/lossk.h by name, for the binding: one entry per LOSSK_KERNELS line, so a kernel
 * added there is reachable from Python (lossk/_losses.py names it) with no other declaration.
 * Each entry keeps its argument struct's name; the binding casts a pointer back to the kernel's
 * real type only after checking it. */
#ifndef LOSSK_KERNEL_TABLE_H
#define LOSSK_KERNEL_TABLE_H

#include "lossk.h"

typedef void (*lossk_any_kernel)(void);

typedef struct lossk_kernel_entry {
    const char *name, *args;
    lossk_any_kernel f32, f64;
} lossk_kernel_entry;

#define LOSSK_KERNEL_ENTRY(name, args) \
    {#name, #args, (lossk_any_kernel)lossk_##name##_f32, (lossk_any_kernel)lossk_##name##_f64},
static const lossk_kernel_entry lossk_kernel_table[] = {LOSSK_KERNELS(LOSSK_KERNEL_ENTRY)};
#undef LOSSK_KERNEL_ENTRY

static const int64_t lossk_kernel_count = sizeof lossk_kernel_table / sizeof lossk_kernel_table[0];

#endif
