// Names and types that a generated Python skeleton must spell carefully: Python keywords,
// names the skeleton's classes use themselves, C types whose Python class names collide,
// anonymous members, floats, bools, pointers, 2-D arrays, 128-bit integers, long names.
// `bpfmap gen skeleton` must give valid, mypy --strict clean Python for all of them.
// Build: tools/bpf-objects.sh (clang -O2 -g -target bpf).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

struct config { __u32 a; };
struct Config { __u64 b; };

struct point { __s32 x, y; };

struct shape {
    __u8 kind;
    union {               /* anonymous: its members read as the struct's own */
        __u32 radius;
        struct point corner;
    };
    struct point vertices[3];
    char label[6];
};

enum { ANON_A = 1, ANON_B = 2 } anonymous_enum;
enum level { LOW = -1, HIGH = 1 };

/* Python keywords and soft keywords */
__u32 class = 1;
__u32 lambda = 2;
__u32 match = 3;
__u32 None = 4;
/* names of the skeleton's own members and of the module's imports */
__u32 map = 5;
__u32 section = 6;
__u64 raw;
__u64 numpy;
__u64 bytes;
__u64 Literal;
__u64 __dunder;

struct config config;
struct Config Config_value;
struct shape shape = { .kind = 2, .radius = 9, .label = "tri" };
__u16 grid[2][3] = { { 1, 2, 3 }, { 4, 5, 6 } };
float ratio = 1.5f;
double precise = 0.25;
_Bool flag = 1;
void *pointer;
unsigned __int128 wide = 7;
enum level level = LOW;
__u32 a_variable_whose_name_is_long_enough_to_need_a_wrapped_line_in_the_generated_module = 8;

const volatile __u32 limit SEC(".rodata.knobs") = 100;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); /* named like the .bss section's map */
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} bss SEC(".maps");

/* Writes what the tests read back through the skeleton. */
SEC("syscall")
int from(void *ctx)
{
    class += limit;
    map = shape.radius + grid[1][2];
    shape.vertices[1].y = -7;
    bytes = __dunder + 1;
    level = HIGH;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
