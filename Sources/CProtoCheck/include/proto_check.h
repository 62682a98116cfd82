// Pre-unpack check of protobuf wire bytes for `string` fields with embedded NUL bytes.
//
// protobuf-c unpacks a `string` field into a NUL-terminated C string, so "ghost\0hidden" on the wire
// reads back as "ghost" in Swift, silently. laser treats such a message as malformed: run this check on
// the bytes before protobuf-c unpacks them. Tested by Tests/CProtoCheckC/run.sh (plain C, no Swift).
#ifndef LASER_PROTO_CHECK_H
#define LASER_PROTO_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The most sub-message levels below the top-level message that laser_proto_check_strings accepts.
#define LASER_PROTO_CHECK_MAX_DEPTH 64

/// Walks the protobuf wire bytes guided by the message descriptor. Returns
///   0  when every string field (at any depth: message fields are walked, repeated ones and oneof
///      members too) is free of NUL bytes;
///   1  when some string field contains a NUL byte (and the bytes are otherwise well formed);
///  -1  when the bytes are not well-formed wire format: truncated varint, tag or length; a length past
///      the end of its message; a fixed32/fixed64 past the end; wire type 3, 4 (groups), 6 or 7; field
///      number 0 or above 2^29-1; a string, bytes or message field with a wire type other than 2;
///      sub-messages nested deeper than LASER_PROTO_CHECK_MAX_DEPTH; a NULL descriptor, or NULL data
///      with a non-zero length. -1 wins over 1: the whole buffer is walked.
/// Unknown fields are skipped (their contents are not looked at), and so are bytes fields, packed
/// repeated scalars and scalar fields. Never reads outside [data, data + length); recursion is bounded
/// by LASER_PROTO_CHECK_MAX_DEPTH. No allocation; thread-safe.
int laser_proto_check_strings(const ProtobufCMessageDescriptor *descriptor, const uint8_t *data, size_t length);

#ifdef __cplusplus
}
#endif

#endif
