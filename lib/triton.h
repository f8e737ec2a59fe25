/*
 * triton.h: the calls migd makes to VMAPI, CNAPI, NAPI and IMGAPI
 * (triton-apis.md): their URLs, built only from validated names, and the
 * reading of their answers.  A builder returns a malloc'd URL, or NULL when a
 * name from an API or a user does not match its strict pattern, so nothing
 * unvalidated is ever sent.  Pure: no I/O.
 */
#ifndef MIG_TRITON_H
#define MIG_TRITON_H

#include <jansson.h>
#include <stdbool.h>

/* base + printf-style path, without doubling the slash; malloc'd. */
char *mig_api_url(const char *base, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* VMAPI GET/PUT /vms/UUID. */
char *mig_url_vm(const char *vmapi, const char *vm_uuid);
/* VMAPI GET /vms?alias=ALIAS&state=active (alias: [A-Za-z0-9._-], < 128). */
char *mig_url_vms_by_alias(const char *vmapi, const char *alias);
/* CNAPI GET /servers?extras=capacity,sysinfo. */
char *mig_url_servers(const char *cnapi);
/* VMAPI's largest page of a VM list: a shorter page is the last. */
#define MIG_VMAPI_PAGE 1000
/* VMAPI GET /vms?state=active&limit=1000&offset=N: one page of every active VM. */
char *mig_url_vms_active(const char *vmapi, long offset);
/* NAPI GET/PUT /networks/NET/ips/IP. */
char *mig_url_ip(const char *napi, const char *network_uuid, const char *ip);
/* NAPI PUT /nics/MAC (the MAC without colons, as NAPI's path wants it). */
char *mig_url_nic(const char *napi, const char *mac);
/* NAPI GET /nics?belongs_to_uuid=VM. */
char *mig_url_nics_of(const char *napi, const char *vm_uuid);

/* True when alias is one VMAPI may be asked about: 1..127 of [A-Za-z0-9._-]. */
bool mig_alias_valid(const char *alias);
/* Writes mac's 12 hex digits into out; false unless it is 6 colon-separated hex pairs or 12 hex. */
bool mig_mac_bare(const char *mac, char out[13]);

/* In a NAPI NIC list, the cn_uuid of the NIC with this MAC ("" when absent); borrowed. */
const char *mig_nics_cn_of(json_t *nics, const char *mac);

#endif
