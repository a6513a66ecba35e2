/* Fuzz the /proc and /sys parsers with any text: /proc/stat, meminfo,
 * loadavg, mounts, net/dev, thermal temp, os-release, uptime. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collect_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input, NUL-terminated, through every parser. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	struct cpu_times a, b;
	double cpu[CPU_NFIELDS], mem[MEM_NFIELDS], load[LOAD_NFIELDS], celsius;
	if (cpu_parse_stat(buf, &a) == 0) {
		b = a;
		cpu_percent(&a, &b, cpu);
	}
	mem_parse_meminfo(buf, mem);
	load_parse(buf, load);
	temp_parse(buf, &celsius);
	static struct net_iface ifs[64], old[64];
	size_t n = net_parse_dev(buf, ifs, 64);
	for (size_t i = 0; i < n; i++) {
		double rates[NET_NFIELDS];
		old[i] = ifs[i];
		net_rates(&old[i], &ifs[i], 1000, rates);
	}
	char os[256];
	sys_parse_os_release(buf, os, sizeof os);
	sys_parse_uptime(buf);
	static struct disk_mount mounts[64];
	disk_parse_mounts(buf, mounts, 64); /* last: it may write into buf */
	free(buf);
	return 0;
}
