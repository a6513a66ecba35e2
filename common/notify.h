/* Readiness for systemd (Type=notify): one datagram to $NOTIFY_SOCKET,
 * the protocol sd_notify(3) documents, without linking libsystemd. */
#ifndef PIMON_NOTIFY_H
#define PIMON_NOTIFY_H

/* Send state (e.g. "READY=1", "STOPPING=1") if started by systemd; a no-op
 * otherwise. 0 sent or nothing to do, -1 on error (logged). */
int notify_send(const char *state);

#endif
