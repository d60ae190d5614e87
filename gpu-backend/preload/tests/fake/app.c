/* A program shaped like PyTorch + cuBLAS: runtime launches bound to libcudart.so.13 at link
 * time, driver launches through dlsym and cuGetProcAddress_v2. Prints the interposer's stats
 * (if it is loaded) and what the fake CUDA libraries really executed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct { unsigned x, y, z; } dim3;
typedef int (*getproc_t)(const char *, void **, int, unsigned long long, int *);
typedef int (*launch_t)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *,
                        void **, void **);
typedef int (*launch_ex_t)(const void *, void *, void **, void **);
typedef int (*copy_t)(unsigned long long, const void *, size_t, void *);

int __cudaLaunchKernel(const void *f, dim3 g, dim3 b, void **args, size_t shm, void *stream);
int cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, void *stream);
int cudaStreamSynchronize(void *stream);
int fake_runtime_copies(void);

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5;
    void *h = dlopen(getenv("FAKE_LIBCUDA"), RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "app: %s\n", dlerror()); return 2; }
    getproc_t gp = (getproc_t)dlsym(h, "cuGetProcAddress_v2");
    launch_t via_getproc = 0, via_dlsym = (launch_t)dlsym(h, "cuLaunchKernel");
    launch_ex_t ex = 0;
    copy_t copy = 0;
    gp("cuLaunchKernel", (void **)&via_getproc, 13000, 0, 0);
    gp("cuLaunchKernelEx", (void **)&ex, 13000, 0, 0);
    gp("cuMemcpyHtoDAsync", (void **)&copy, 13000, 0, 0);
    dim3 g = {4, 1, 1}, b = {128, 1, 1};
    char host[16];
    for (int i = 0; i < n; i++) {
        __cudaLaunchKernel((void *)main, g, b, 0, 0, 0);
        via_getproc((void *)main, 4, 1, 1, 128, 1, 1, 0, 0, 0, 0);
        via_dlsym((void *)main, 4, 1, 1, 128, 1, 1, 0, 0, 0, 0);
        ex(0, (void *)main, 0, 0);
        cudaMemcpyAsync(host, host, sizeof host, 1, 0);
        copy(0, host, sizeof host, 0);
    }
    cudaStreamSynchronize(0);
    if (dlsym(RTLD_NEXT, "getpid") != (void *)getpid) { fprintf(stderr, "app: RTLD_NEXT broken\n"); return 3; }
    size_t (*stats)(char *, size_t) = (size_t (*)(char *, size_t))dlsym(RTLD_DEFAULT, "orion_stats_json");
    static char buf[1 << 16];
    if (stats && stats(buf, sizeof buf) < sizeof buf) printf("STATS %s\n", buf);
    else printf("STATS {}\n");
    int c[3];
    void (*counts)(int *) = (void (*)(int *))dlsym(h, "fake_driver_counts");
    counts(c);
    printf("REAL %d %d %d %d\n", c[0], c[1], c[2], fake_runtime_copies());
    return 0;
}
