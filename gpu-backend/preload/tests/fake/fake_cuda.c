/* A stand-in for libcuda.so.1 in the interposer's CPU tests: the driver entry points the
 * interposer wraps, each counting its calls, reachable through dlsym and cuGetProcAddress_v2. */
#include <stddef.h>
#include <string.h>

static int launches, copies, syncs;

int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shm, void *stream, void **params, void **extra) {
    (void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)shm; (void)stream;
    (void)params; (void)extra;
    launches++;
    return 0;
}

int cuLaunchKernelEx(const void *config, void *f, void **params, void **extra) {
    (void)config; (void)f; (void)params; (void)extra;
    launches++;
    return 0;
}

int cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *src, size_t n, void *stream) {
    (void)dst; (void)src; (void)n; (void)stream;
    copies++;
    return 0;
}

int cuStreamSynchronize(void *stream) {
    (void)stream;
    syncs++;
    return 0;
}

int cuGetProcAddress_v2(const char *sym, void **pfn, int version, unsigned long long flags, int *status) {
    (void)version; (void)flags;
    if (status) *status = 0;
    if (!strcmp(sym, "cuLaunchKernel")) *pfn = (void *)cuLaunchKernel;
    else if (!strcmp(sym, "cuLaunchKernelEx")) *pfn = (void *)cuLaunchKernelEx;
    else if (!strcmp(sym, "cuMemcpyHtoDAsync")) *pfn = (void *)cuMemcpyHtoDAsync_v2;
    else if (!strcmp(sym, "cuStreamSynchronize")) *pfn = (void *)cuStreamSynchronize;
    else if (!strcmp(sym, "cuGetProcAddress")) *pfn = (void *)cuGetProcAddress_v2;
    else { *pfn = 0; return 500; }
    return 0;
}

void fake_driver_counts(int *out) {
    out[0] = launches;
    out[1] = copies;
    out[2] = syncs;
}
