/* The fleet the data folder knows: hosts listed at start before they
 * connect, and hosts forgotten on purpose. */
#ifndef PIMON_FLEET_H
#define PIMON_FLEET_H

#include "registry.h"

/* List every host folder of <data_dir>/hosts in the registry, down since
 * its last event, but those forgotten since. The count, or -1 (logged). */
int fleet_load(struct registry *reg, const char *data_dir);

/* Forget the host: left out of every listing now and at later starts until
 * it says HELLO again; its files stay. 0; -1 no such host; -2 it is
 * connected; -3 the marker could not be written (logged; forgotten until
 * the next start only). */
int fleet_forget(struct registry *reg, const char *data_dir, const char *name);

#endif
