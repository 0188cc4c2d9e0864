/*
 * sluice.h - Sluice's public API: version and error helpers.
 *
 * The broker is used through the `sluice` command; the libsluice pattern
 * APIs (messaging, sagas, event store, outbox) arrive in later releases and
 * will be declared in headers beside this one, with opaque handles only.
 */
#ifndef SLUICE_H
#define SLUICE_H

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 1
#define SLUICE_VERSION_PATCH 0
#define SLUICE_VERSION_STRING "0.1.0"

/* Human-readable text of a negative sl error code. */
const char *sluice_strerror(int err);

#endif
