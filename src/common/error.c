/*
 * error.c - text and class of each SL_E* code (see error.h).
 */
#include <errno.h>
#include "common/error.h"
#include "common/base.h"

static const struct {
    const char *text;
    sl_errclass cls;
} errors[SL_E_COUNT_] = {
    [0] = {"success", SL_ERRCLASS_NONE},
    [1] = {"invalid argument or malformed input", SL_ERRCLASS_CALLER},
    [2] = {"out of memory or a bounded buffer is full", SL_ERRCLASS_RETRIABLE},
    [3] = {"input/output error", SL_ERRCLASS_RETRIABLE},
    [4] = {"no space left on device", SL_ERRCLASS_RETRIABLE},
    [5] = {"not found", SL_ERRCLASS_CALLER},
    [6] = {"already exists", SL_ERRCLASS_CALLER},
    [7] = {"data is corrupt", SL_ERRCLASS_FATAL},
    [8] = {"temporarily unavailable, try again", SL_ERRCLASS_RETRIABLE},
    [9] = {"too large", SL_ERRCLASS_CALLER},
    [10] = {"in use by another process", SL_ERRCLASS_RETRIABLE},
    [11] = {"out of range", SL_ERRCLASS_CALLER},
    [12] = {"closed", SL_ERRCLASS_FATAL},
};

const char *sl_strerror(int err)
{
    if (err > 0 || -err >= SL_E_COUNT_) return "unknown error";
    return errors[-err].text;
}

sl_errclass sl_error_class(int err)
{
    if (err > 0 || -err >= SL_E_COUNT_) return SL_ERRCLASS_FATAL;
    return errors[-err].cls;
}

int sl_error_from_errno(int errnum)
{
    switch (errnum) {
    case 0: return SL_OK;
    case ENOSPC: case EDQUOT: return SL_ENOSPC;
    case ENOENT: return SL_ENOENT;
    case EEXIST: return SL_EEXIST;
    case ENOMEM: return SL_ENOMEM;
    case EAGAIN: case EINTR: return SL_EAGAIN;
    case EINVAL: return SL_EINVAL;
    default: return SL_EIO;
    }
}

const char *sluice_strerror(int err);
const char *sluice_strerror(int err) { return sl_strerror(err); }
