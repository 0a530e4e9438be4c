// harness_io.h — binary stdin/stdout helpers of the host test harnesses (tests/harness/*.cpp).
// The Python side (tests/test_kernels.py) writes raw little-endian arrays in a fixed order per
// harness and reads raw arrays back.  Host-only code: it may include system headers.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

template <class T>
std::vector<T> read_array(size_t n) {
    std::vector<T> v(n);
    if (n && std::fread(v.data(), sizeof(T), n, stdin) != n) {
        std::fprintf(stderr, "harness: short read (%zu items)\n", n);
        std::exit(3);
    }
    return v;
}

template <class T>
T read_one() { return read_array<T>(1)[0]; }

template <class T>
void write_array(const std::vector<T>& v) {
    if (!v.empty()) std::fwrite(v.data(), sizeof(T), v.size(), stdout);
}

// A parameter struct sent as raw bytes (a NumPy structured record of the CuPy backend), preceded
// by its u64 byte size, which must equal sizeof(T): checks the backend's dtype layout.
template <class T>
T read_struct() {
    const unsigned long long n = read_one<unsigned long long>();
    if (n != sizeof(T)) {
        std::fprintf(stderr, "harness: struct of %llu bytes sent, sizeof is %zu\n", n, sizeof(T));
        std::exit(6);
    }
    auto b = read_array<unsigned char>(n);
    T t;
    std::memcpy(&t, b.data(), n);
    return t;
}

// The CAR-T agent table as the tests send it (R*C entries each, in the order of the CuPy
// backend's TABLE_FIELDS): u8 state, i32 pos, f32 exh, u8 div, i32 kills, i8 dir, i16 act, u8 eng.
// view<AgentTable>() gives the kernels' struct of pointers (kernels/car_t_logic.cuh).
struct HostTable {
    std::vector<unsigned char> state;
    std::vector<int> pos;
    std::vector<float> exh;
    std::vector<unsigned char> div;
    std::vector<int> kills;
    std::vector<signed char> dir;
    std::vector<short> act;
    std::vector<unsigned char> eng;

    static HostTable read(size_t n) {
        HostTable t;
        t.state = read_array<unsigned char>(n);
        t.pos = read_array<int>(n);
        t.exh = read_array<float>(n);
        t.div = read_array<unsigned char>(n);
        t.kills = read_array<int>(n);
        t.dir = read_array<signed char>(n);
        t.act = read_array<short>(n);
        t.eng = read_array<unsigned char>(n);
        return t;
    }

    void write() const {
        write_array(state); write_array(pos); write_array(exh); write_array(div);
        write_array(kills); write_array(dir); write_array(act); write_array(eng);
    }

    template <class Table>
    Table view() {
        return Table{state.data(), pos.data(), exh.data(), div.data(), kills.data(), dir.data(),
                     act.data(), eng.data()};
    }
};
