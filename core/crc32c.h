/*
** CRC-32C (Castagnoli), the checksum of every record, hint and file header.
*/
#ifndef TKV_CRC32C_H
#define TKV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over n bytes at p. */
uint32_t tkv_crc32c(uint32_t crc, const void *p, size_t n);

#endif
