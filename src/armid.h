/*-------------------------------------------------------------------------
 *
 * armid.h
 *	  Azure Resource Manager ids: shape checks and case-insensitive
 *	  comparison.
 *
 * IDENTIFICATION
 *	  src/armid.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_ARMID_H
#define ASR_ARMID_H

/* Shapes accepted by asr_arm_id_check() */
#define ARM_SHAPE_RESOURCE_GROUP \
	"subscriptions/{subscription id}/resourceGroups/{resource group}"
#define ARM_SHAPE_VNET ARM_SHAPE_RESOURCE_GROUP \
	"/providers/Microsoft.Network/virtualNetworks/{name}"
#define ARM_SHAPE_STORAGE ARM_SHAPE_RESOURCE_GROUP \
	"/providers/Microsoft.Storage/storageAccounts/{name}"
#define ARM_SHAPE_AVSET ARM_SHAPE_RESOURCE_GROUP \
	"/providers/Microsoft.Compute/availabilitySets/{name}"
#define ARM_SHAPE_PPG ARM_SHAPE_RESOURCE_GROUP \
	"/providers/Microsoft.Compute/proximityPlacementGroups/{name}"
#define ARM_SHAPE_ITEM ARM_SHAPE_RESOURCE_GROUP \
	"/providers/Microsoft.RecoveryServices/vaults/{name}" \
	"/replicationFabrics/{name}/replicationProtectionContainers/{name}" \
	"/replicationProtectedItems/{name}"

extern bool asr_is_guid(const char *s);
extern bool asr_arm_id_matches(const char *id, const char *shape);
extern void asr_arm_id_check(const char *id, const char *shape, const char *what);
extern bool asr_arm_id_equal(const char *a, const char *b);
extern char *asr_arm_id_prefix(const char *id, int nsegments);
extern char *asr_arm_id_segment(const char *id, int n);
extern int	asr_arm_id_nsegments(const char *id);

#endif							/* ASR_ARMID_H */
