// The interposer's cost on a call it passes through (issue 6, overhead): host time per
// kernel launch of an empty kernel, timed in batches of 256 launches (fewer than the launch
// queue holds, so the host is timed, not the GPU), the GPU drained between batches. Run it
// with and without LD_PRELOAD=liborion_preload.so (and ORION_PRELOAD_CONFIG), alternately:
// with the interposer the thread registers as client 0 and opens no request, so every launch
// goes through the hook's pass-through path, as the unmarked blocks of sched_check.py do.
//
//     nvcc -O2 -o hook_cost hook_cost.cu -ldl && ./hook_cost [BATCHES]
//
// Prints one JSON line: median and mean ns per launch over the batches, and whether the
// interposer was there.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <vector>

__global__ void empty_kernel(int x) {
    if (x == -12345) printf("never\n");
}

int main(int argc, char **argv) {
    int batches = argc > 1 ? atoi(argv[1]) : 400;
    const int per = 256;
    auto reg = (int (*)(int))dlsym(RTLD_DEFAULT, "orion_register_client");
    int mode = reg ? reg(0) : -2;
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    for (int i = 0; i < 1000; i++) empty_kernel<<<1, 32, 0, s>>>(i);
    cudaStreamSynchronize(s);
    std::vector<double> ns;
    for (int b = 0; b < batches; b++) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < per; i++) empty_kernel<<<1, 32, 0, s>>>(i);
        auto t1 = std::chrono::steady_clock::now();
        cudaStreamSynchronize(s);
        ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / per);
    }
    cudaError_t e = cudaGetLastError();
    std::vector<double> sorted = ns;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double v : ns) mean += v / ns.size();
    printf("{\"preload\": %s, \"register\": %d, \"batches\": %d, \"launches_per_batch\": %d, \"median_ns\": %.1f, "
           "\"mean_ns\": %.1f, \"error\": \"%s\"}\n",
           reg ? "true" : "false", mode, batches, per, sorted[sorted.size() / 2], mean, cudaGetErrorString(e));
    return e == cudaSuccess ? 0 : 1;
}
