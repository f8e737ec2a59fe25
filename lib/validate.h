/*
 * validate.h: the validation rules of product.md step 1, as pure functions
 * over the JSON that VMAPI and CNAPI return.  Each refusal names its rule, so
 * the operator knows exactly which one failed.
 */
#ifndef MIG_VALIDATE_H
#define MIG_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Rule names, as reported in error.code and by migctl. */
#define MIG_RULE_VM_UUID "InvalidVmUuid"            /* malformed VM uuid */
#define MIG_RULE_VM_UNKNOWN "VmNotFound"            /* VMAPI has no such VM */
#define MIG_RULE_VM_STATE "VmStateNotMigratable"    /* not running or stopped */
#define MIG_RULE_VM_BRAND "BrandNotSupported"
#define MIG_RULE_VM_CORE "CoreZone"                 /* Triton core zone */
#define MIG_RULE_VM_NAT "NatZone"
#define MIG_RULE_VM_BUSY "VmAlreadyMigrating"       /* another job holds the VM */
#define MIG_RULE_TARGET_UNKNOWN "TargetNotFound"
#define MIG_RULE_TARGET_SAME "TargetIsSource"
#define MIG_RULE_TARGET_SETUP "TargetNotSetup"
#define MIG_RULE_TARGET_RUNNING "TargetNotRunning"
#define MIG_RULE_TARGET_RESERVED "TargetReserved"
#define MIG_RULE_TARGET_HEADNODE "TargetIsHeadnode"
#define MIG_RULE_NIC_TAG "TargetMissingNicTag"
#define MIG_RULE_UNDERLAY "TargetMissingUnderlay"   /* a fabric NIC, and no underlay there */
#define MIG_RULE_RAM "TargetInsufficientRam"
#define MIG_RULE_DISK "TargetInsufficientDisk"
#define MIG_RULE_PLATFORM "TargetPlatformOlder"
#define MIG_RULE_UNREACHABLE "CnUnreachable"        /* SSH to a CN failed */
#define MIG_RULE_HOSTKEY "HostKeyMismatch"
#define MIG_RULE_FOREIGN_DATASET "ForeignDataset"  /* VMAPI lists a dataset not the VM's */

struct mig_refusal {
    const char *rule;  /* one of MIG_RULE_* */
    char message[512]; /* one line: what is wrong and what to do */
};

/*
 * Fills *r (when not NULL) with rule and the printf-style message, kept on
 * one line, and returns MIG_EREFUSED: every refusal of validate.c and
 * place.c is made so.
 */
int mig_refuse(struct mig_refusal *r, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Checks the VM on its own: state, brand, core zone (tags.smartdc_role, or
 * owner_uuid equal to admin_uuid when admin_uuid is not NULL), NAT zone.
 * Returns 0 when it may migrate, MIG_EREFUSED with *r filled otherwise.
 */
int mig_validate_vm(json_t *vm, const char *admin_uuid, struct mig_refusal *r);

/*
 * Checks the target server (CNAPI object with sysinfo and capacity) for the
 * VM coming from source, in this order: different CN (source NULL: vm's
 * server_uuid), not the headnode, setup, running, not reserved, every NIC tag
 * of the VM's NICs that are not on a fabric, an underlay for every fabric NIC
 * (mig_nic_tag_overlay), unreserved RAM (vm.ram MiB) and disk (disk_mib: the
 * VM's data),
 * platform same or newer unless allow_older (an unknown platform counts as
 * older).  Returns 0 or MIG_EREFUSED with *r (if not NULL) filled.
 */
int mig_validate_target(json_t *vm, json_t *source, json_t *target, int64_t disk_mib,
                        bool allow_older, struct mig_refusal *r);

/*
 * True when name is one of the VM's own datasets in pool: POOL/VM (the zone
 * dataset), POOL/VM/CHILD[/...] (a bhyve disk such as zones/VM/disk0, a
 * delegated dataset such as zones/VM/data) or POOL/VM-diskN (a KVM disk, N
 * decimal digits, as VM.js names them).  The comparison is exact (ZFS names
 * are case-sensitive); empty, "." and ".." components, and a pool that is not
 * one plain component, are never accepted.
 */
bool mig_dataset_is_vms(const char *name, const char *pool, const char *vm_uuid);
/*
 * Checks that every dataset VMAPI lists for the VM is its own
 * (mig_dataset_is_vms): zfs_filesystem, each disks[].zfs_filesystem and each
 * name in the delegated datasets[].  pool is the VM's zpool.  migd would copy
 * and later destroy on the source whatever these name, so a record naming
 * another VM's dataset is refused (MIG_RULE_FOREIGN_DATASET, the message names
 * the dataset and the rule).  Returns 0 or MIG_EREFUSED with *r filled.
 */
int mig_validate_datasets(json_t *vm, const char *pool, struct mig_refusal *r);

/* The server of CNAPI's list whose UUID (any case) or hostname is key; borrowed, or NULL. */
json_t *mig_server_find(json_t *servers, const char *key);

/* The server's NIC tags: union of sysinfo interfaces' "NIC Names".  New array. */
json_t *mig_server_nic_tags(json_t *server);
/*
 * The overlay NIC tags the server carries fabric NICs for: the union of
 * "Overlay Nic Tags" over sysinfo's "Virtual Network Interfaces".  On a
 * Triton CN that is its underlay vnic (sdc_underlay0, over the NIC tagged
 * sdc_underlay), which lists "sdc_overlay"; DAPI and VMAPI read the same
 * field.  New array, empty when the server has no underlay.
 */
json_t *mig_server_overlay_tags(json_t *server);
/*
 * True when a VM NIC's nic_tag names a fabric (VXLAN overlay) network:
 * "RULE/VNET_ID", as NAPI writes it for a NIC on a network with fabric: true
 * (the overlay rule, e.g. sdc_overlay, then the decimal virtual network id).
 * When rule is not NULL, the rule's name is copied there (cut to size).
 */
bool mig_nic_tag_overlay(const char *nic_tag, char *rule, size_t size);
/* The server's "Admin IP" from sysinfo, or NULL.  Borrowed. */
const char *mig_server_admin_ip(json_t *server);
/* The VM's origin image uuid: image_uuid, or disks[0].image_uuid; borrowed or NULL. */
const char *mig_vm_image_uuid(json_t *vm);
/* True for the brands migd moves: joyent, joyent-minimal, lx, bhyve, kvm. */
bool mig_brand_supported(const char *brand);

#endif
