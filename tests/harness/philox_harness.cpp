// Host harness for kernels/philox.cuh: evaluates the header's functions on inputs from stdin.
// stdin: u8 mode, u64 n, then per mode
//   'P' n × (c0 c1 c2 c3 k0 k1) u32     -> n × 4 u32   philox4x32 (10 rounds)
//   'W' n × (seed rep step stream ent)  -> n u32        word()
//   'B' n × (seed rep step stream ent draw) -> n × 4 u32 block()
//   'T' n float32                        -> n u64        threshold()
//   'C' n × (word, n) u32                -> n u32        choose()
#include "../../kernels/philox.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    u8 mode = read_one<u8>();
    u64 n = read_one<u64>();
    if (mode == 'P') {
        auto in = read_array<u32>(n * 6);
        std::vector<u32> out(n * 4);
        for (u64 i = 0; i < n; ++i) {
            const u32* c = &in[i * 6];
            Block4 b = philox4x32(c[0], c[1], c[2], c[3], c[4], c[5]);
            for (int j = 0; j < 4; ++j) out[i * 4 + j] = b.w[j];
        }
        write_array(out);
    } else if (mode == 'W') {
        auto in = read_array<u32>(n * 5);
        std::vector<u32> out(n);
        for (u64 i = 0; i < n; ++i) {
            const u32* c = &in[i * 5];
            out[i] = word(c[0], c[1], c[2], c[3], c[4]);
        }
        write_array(out);
    } else if (mode == 'B') {
        auto in = read_array<u32>(n * 6);
        std::vector<u32> out(n * 4);
        for (u64 i = 0; i < n; ++i) {
            const u32* c = &in[i * 6];
            Block4 b = block(c[0], c[1], c[2], c[3], c[4], c[5]);
            for (int j = 0; j < 4; ++j) out[i * 4 + j] = b.w[j];
        }
        write_array(out);
    } else if (mode == 'T') {
        auto in = read_array<float>(n);
        std::vector<u64> out(n);
        for (u64 i = 0; i < n; ++i) out[i] = threshold(in[i]);
        write_array(out);
    } else if (mode == 'C') {
        auto in = read_array<u32>(n * 2);
        std::vector<u32> out(n);
        for (u64 i = 0; i < n; ++i) out[i] = choose(in[2 * i], in[2 * i + 1]);
        write_array(out);
    } else {
        std::fprintf(stderr, "philox_harness: unknown mode %c\n", mode);
        return 2;
    }
    return 0;
}
