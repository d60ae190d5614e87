// How many launches one stream holds before a launch call blocks (the device file's
// `submitter.queue_depth`, which the calibration plan does not measure yet; the fit's default,
// about 1000, was reported for an earlier GPU). Launches N kernels that each spin for SPIN_US
// onto one stream, timing every launch call on the host: while the stream has room a call
// returns in a few microseconds; once it is full a call waits for a kernel to complete (about
// SPIN_US). The depth is the index of the first slow call. Then the same with two streams
// filled alternately (is the limit per stream or per context?).
//
//     nvcc -O2 -o queue_depth queue_depth.cu && ./queue_depth [N=4000] [SPIN_US=50]
//
// Prints one JSON line per stream count: the first call slower than half a kernel, calls
// before it, and the median call time before and after.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

__global__ void spin(long long cycles) {
    long long t0 = clock64();
    while (clock64() - t0 < cycles) {
    }
}

static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4000;
    double spin_us = argc > 2 ? atof(argv[2]) : 50;
    int clock_khz = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    long long cycles = (long long)(spin_us * clock_khz / 1000.0);
    for (int streams = 1; streams <= 2; streams++) {
        std::vector<cudaStream_t> s(streams);
        for (auto &x : s) cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking);
        spin<<<1, 32, 0, s[0]>>>(1000);
        cudaDeviceSynchronize();
        std::vector<double> us(n);
        for (int i = 0; i < n; i++) {
            auto t0 = std::chrono::steady_clock::now();
            spin<<<1, 32, 0, s[i % streams]>>>(cycles);
            us[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        }
        cudaDeviceSynchronize();
        int first = -1;
        for (int i = 0; i < n; i++)
            if (us[i] > spin_us / 2) {
                first = i;
                break;
            }
        std::vector<double> before(us.begin(), us.begin() + (first < 0 ? n : first));
        std::vector<double> after(first < 0 ? us.end() : us.begin() + first, us.end());
        printf("{\"streams\": %d, \"launches\": %d, \"spin_us\": %.1f, \"first_slow_call\": %d, "
               "\"per_stream_before_it\": %.1f, \"median_call_us_before\": %.2f, \"median_call_us_after\": %.2f, "
               "\"error\": \"%s\"}\n",
               streams, n, spin_us, first, first < 0 ? -1.0 : (double)first / streams, median(before), median(after),
               cudaGetErrorString(cudaGetLastError()));
        for (auto &x : s) cudaStreamDestroy(x);
    }
    return 0;
}
