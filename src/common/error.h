/*
 * error.h - Sluice's error codes and their classes.
 *
 * Functions return 0 on success or a negative SL_E* code. Codes that cross
 * a library boundary carry a class: retriable (try again later: a full
 * disk may drain, a peer may come back), fatal (this handle is unusable),
 * or the caller's fault (bad argument, bad input). Kafka error codes are a
 * different space and stay Kafka's numbers on the wire (kafka/errors.h).
 */
#ifndef SL_COMMON_ERROR_H
#define SL_COMMON_ERROR_H

enum {
    SL_OK = 0,
    SL_EINVAL = -1,    /* caller's fault: bad argument or malformed input */
    SL_ENOMEM = -2,    /* a bounded buffer or queue is full */
    SL_EIO = -3,       /* a read, write or sync failed */
    SL_ENOSPC = -4,    /* the disk is full */
    SL_ENOENT = -5,    /* no such thing */
    SL_EEXIST = -6,    /* already exists */
    SL_ECORRUPT = -7,  /* data failed a checksum or structural check */
    SL_EAGAIN = -8,    /* not now; retry */
    SL_ETOOBIG = -9,   /* input over a configured maximum */
    SL_EBUSY = -10,    /* held by someone else (a lock) */
    SL_ERANGE = -11,   /* offset or index outside what exists */
    SL_ECLOSED = -12,  /* the handle or peer was closed */
    SL_E_COUNT_ = 13
};

typedef enum { SL_ERRCLASS_NONE, SL_ERRCLASS_RETRIABLE, SL_ERRCLASS_FATAL, SL_ERRCLASS_CALLER } sl_errclass;

const char *sl_strerror(int err);
sl_errclass sl_error_class(int err);
static inline int sl_error_is_retriable(int err) { return sl_error_class(err) == SL_ERRCLASS_RETRIABLE; }
/* Maps an errno value to the nearest SL_E* code. */
int sl_error_from_errno(int errnum);

#endif
