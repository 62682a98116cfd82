// The scan itself is static inline in include/json_scan.h; a C target needs one source file.
#include "json_scan.h"
