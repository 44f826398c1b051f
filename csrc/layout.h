/*
 * The value layout of a map, in one place: the C core, the fuzzer and (through
 * bpfmap_elem_size() and bpfmap_values_size()) the Python tools all use it.
 *
 * Values sit at a stride of round_up(value_size, 8), as in the kernel's
 * struct bpf_array (elem_size). An emulated map is a memfd laid out like the
 * kernel's vmalloc area for a BPF_F_MMAPABLE array: page 0 ends with our
 * header (where the kernel keeps struct bpf_array), values start on page 1,
 * and the file ends on a page boundary after the last value.
 */
#ifndef BPFMAP_LAYOUT_H
#define BPFMAP_LAYOUT_H

#include <stdint.h>

#define BPFMAP_HEADER_MAGIC 0x3170616d66706266ULL /* "fbpfmap1" */
#define BPFMAP_HEADER_VERSION 1

/* Sits on the last bytes of page 0 of an emulated map's memfd. */
struct bpfmap_header {
    uint64_t magic;
    uint32_t version;
    uint32_t map_type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;
    uint64_t page_size;
    char name[16];
};

static inline uint64_t layout_page_align(uint64_t n, uint64_t page)
{
    return (n + page - 1) & ~(page - 1);
}

/* round_up(value_size, 8): the kernel's array elem_size. */
static inline uint64_t layout_elem_size(uint32_t value_size)
{
    return ((uint64_t)value_size + 7) & ~7ULL;
}

/* The file offset of the header: the end of page 0. */
static inline uint64_t layout_header_offset(uint64_t page)
{
    return page - sizeof(struct bpfmap_header);
}

/* The page-aligned value area, what mmap() of the map may cover. */
static inline uint64_t layout_values_size(uint32_t value_size, uint32_t max_entries,
                                          uint64_t page)
{
    return layout_page_align((uint64_t)max_entries * layout_elem_size(value_size), page);
}

/* The emulated map's file: page 0, then the value area. */
static inline uint64_t layout_file_size(uint32_t value_size, uint32_t max_entries, uint64_t page)
{
    return page + layout_values_size(value_size, max_entries, page);
}

/* The file offset of value `key` (emulated), or its offset in a mapping of
 * the values (kernel and emulated) when page is 0. */
static inline uint64_t layout_value_offset(uint64_t page, uint64_t elem_size, uint32_t key)
{
    return page + (uint64_t)key * elem_size;
}

#endif
