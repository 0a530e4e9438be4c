// Host harness for car_t_suppression (kernels/car_t_logic.cuh), twin of
// gpusim.model.car_t.suppression: the float32 factor S and the felt TGF-β T per cell, bitwise.
// (Kill and division probabilities enter the phase only through decisions, where a one-ulp
// difference is practically invisible; this checks their common factor S exactly.)
// stdin: i32 n; CarTK (read_struct: cupy_backend.car_t_k); f32 tgfb[n], il12[n], o2[n],
//        glucose[n]
// stdout: f32 S[n], T[n]
#include "../../kernels/car_t_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(1);
    const CarTK p = read_struct<CarTK>();
    const size_t n = (size_t)gi[0];
    auto tg = read_array<float>(n);
    auto il = read_array<float>(n);
    auto o2 = read_array<float>(n);
    auto gl = read_array<float>(n);
    std::vector<float> S(n), T(n);
    for (size_t i = 0; i < n; ++i) S[i] = car_t_suppression(p, tg[i], il[i], o2[i], gl[i], &T[i]);
    write_array(S);
    write_array(T);
    return 0;
}
