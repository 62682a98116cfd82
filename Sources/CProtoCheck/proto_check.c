#include "proto_check.h"

#include <string.h>

// Reads a base-128 varint from [*p, end). Returns 0 when it is truncated or longer than 10 bytes;
// otherwise advances *p past it and stores its value, UINT64_MAX when it does not fit in 64 bits.
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value) {
    const uint8_t *q = *p;
    uint64_t v = 0;
    int overflow = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (q == end) return 0;
        uint8_t b = *q++;
        if (i == 9 && (b & 0x7E) != 0) overflow = 1;  // the 10th byte carries only bit 63
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            *p = q;
            *value = overflow ? UINT64_MAX : v;
            return 1;
        }
    }
    return 0;
}

static int is_length_delimited_type(ProtobufCType type) {
    return type == PROTOBUF_C_TYPE_STRING || type == PROTOBUF_C_TYPE_BYTES || type == PROTOBUF_C_TYPE_MESSAGE;
}

// Walks one message in [p, end). Returns -1 on malformed input, else 0; sets *found_nul when a string
// field holds a NUL byte.
static int check_message(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end,
                         unsigned depth, int *found_nul) {
    if (depth > LASER_PROTO_CHECK_MAX_DEPTH) return -1;
    if (desc == NULL || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) return -1;
    while (p != end) {
        uint64_t key;
        if (!read_varint(&p, end, &key)) return -1;
        uint64_t number = key >> 3;
        unsigned wire_type = (unsigned)(key & 7);
        if (number == 0 || number > 0x1FFFFFFFu) return -1;
        const ProtobufCFieldDescriptor *field = protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
        if (field != NULL && wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && is_length_delimited_type(field->type))
            return -1;  // protobuf-c refuses these too
        switch (wire_type) {
        case PROTOBUF_C_WIRE_TYPE_VARINT: {
            uint64_t ignored;
            if (!read_varint(&p, end, &ignored)) return -1;
            break;
        }
        case PROTOBUF_C_WIRE_TYPE_64BIT:
            if ((size_t)(end - p) < 8) return -1;
            p += 8;
            break;
        case PROTOBUF_C_WIRE_TYPE_32BIT:
            if ((size_t)(end - p) < 4) return -1;
            p += 4;
            break;
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            uint64_t len;
            if (!read_varint(&p, end, &len)) return -1;
            if (len > (uint64_t)(end - p)) return -1;
            const uint8_t *body = p;
            p += (size_t)len;
            if (field == NULL) break;  // unknown field: opaque
            if (field->type == PROTOBUF_C_TYPE_STRING) {
                if (len != 0 && memchr(body, 0, (size_t)len) != NULL) *found_nul = 1;
            } else if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (check_message((const ProtobufCMessageDescriptor *)field->descriptor, body, p, depth + 1, found_nul) < 0)
                    return -1;
            }
            // bytes, packed repeated scalars (and scalars sent as wire type 2, which protobuf-c rejects): skipped
            break;
        }
        default:  // 3 and 4 (groups), 6, 7
            return -1;
        }
    }
    return 0;
}

int laser_proto_check_strings(const ProtobufCMessageDescriptor *descriptor, const uint8_t *data, size_t length) {
    if (descriptor == NULL) return -1;
    if (length == 0) return 0;
    if (data == NULL) return -1;
    int found_nul = 0;
    if (check_message(descriptor, data, data + length, 0, &found_nul) < 0) return -1;
    return found_nul ? 1 : 0;
}
