"""ASR resources built from the world: vault, regions (fabric + container), mappings, policies,
VMs with managed disks, and replication protected items (RPIs).

Rendering matches the real A2A documents of asr-rest.md sections 2.3, 7 and the PowerShell
recording (A2AReprotectTest.json): `/Subscriptions/` with a capital S in ASR ids, lower-case
compute ids (the item's `diskId` and `fabricObjectId` fully lower-cased as the service does),
primary/recovery fields relative to the item's current direction ("AB" = original primary region A
to B; "BA" after a reprotect), the idle `currentScenario` sentinel, frozen RPO after failover.
"""
from . import recovery_points, statemachine, util

RPI_TYPE = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems"


class Region:
    def __init__(self, vault, d):
        self.vault = vault
        self.location = d["location"]
        self.friendly = d.get("friendly_name", d["location"])
        self.fabric = d["fabric"]
        self.container = d["container"]
        self.fabric_guid = util.stable_guid(vault.name, "fabric", self.fabric)
        self.container_guid = util.stable_guid(vault.name, "container", self.container)
        self.provider_guid = util.stable_guid(vault.name, "provider", self.fabric)

    def fabric_id(self):
        return self.vault.prefix() + "/replicationFabrics/" + self.fabric

    def container_id(self, guid=False):
        return self.fabric_id() + "/replicationProtectionContainers/" + (self.container_guid if guid else self.container)

    def fabric_doc(self):
        return {"name": self.fabric, "type": "Microsoft.RecoveryServices/vaults/replicationFabrics",
                "id": self.fabric_id(), "location": None,
                "properties": {"friendlyName": self.friendly,
                               "encryptionDetails": {"kekState": "None", "kekCertThumbprint": None},
                               "rolloverEncryptionDetails": {"kekState": "None", "kekCertThumbprint": None},
                               "internalIdentifier": self.fabric_guid, "bcdrState": "Valid",
                               "customDetails": {"instanceType": "Azure", "location": self.location,
                                                 "containerIds": [self.container_id(guid=True)]},
                               "healthErrorDetails": [], "health": "Normal"}}

    def container_doc(self):
        count = sum(1 for i in self.vault.items if i.primary() is self)
        return {"id": self.container_id(), "name": self.container,
                "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers",
                "location": None,
                "properties": {"fabricFriendlyName": self.friendly, "friendlyName": self.container,
                               "fabricType": "Azure", "protectedItemCount": count, "pairingStatus": "Paired",
                               "role": "Primary", "fabricSpecificDetails": None}}


class Disk:
    def __init__(self, vm, d, now):
        self.vm = vm
        self.name = d["name"]
        self.size_gb = int(d.get("size_gb", 128))
        self.type = d.get("type", "Premium_LRS")
        self.os = bool(d.get("os", False))
        self.added_at = now - float(d.get("added_minutes_ago", vm.protected_minutes_ago)) * 60

    def id_in(self, side):
        """ARM id of this disk in region side 'A' (original) or 'B' (failover copy)."""
        rg = self.vm.rg if side == "A" else self.vm.recovery_rg
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/disks/%s" % (
            self.vm.vault.sub, rg, self.name)


class VM:
    def __init__(self, vault, d, now):
        self.vault = vault
        self.name = d["name"]
        self.rg = d.get("resource_group", vault.rg)
        self.recovery_rg = d.get("recovery_resource_group", self.rg + "-asr")
        self.size = d.get("size", "Standard_D2s_v3")
        self.os_type = d.get("os_type", "Linux")
        self.protected_minutes_ago = float(d.get("protected_minutes_ago", 7 * 24 * 60))
        self.guid = util.stable_guid(vault.name, "vm", self.name)
        self.region_a = vault.regions[d["primary"]]
        self.region_b = vault.regions[d["recovery"]]
        self.disks = [Disk(self, x, now) for x in d["disks"]]

    def vm_id(self, side):
        rg = self.rg if side == "A" else self.recovery_rg
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (
            self.vault.sub, rg, self.name)


class Item:
    def __init__(self, vault, vm, name, policy_name, rpo, now):
        self.vault = vault
        self.vm = vm
        self.name = name
        self.policy_name = policy_name
        self.rpo_base = int(rpo)
        self.direction = "AB"
        self.state = "Protected"
        self.tfo_state = "None"
        self.job = None
        self.rps = []
        self.rp_cursor = None
        self.failover_rp = None        # (point name, time, container-guid form?)
        self.failover_rp_id = None
        self.last_failover = None
        self.last_tfo = None
        self.protected_since = now - vm.protected_minutes_ago * 60
        self.ir_start = None
        self.ir_until = None
        self.ir_pending_until = None
        self.frozen_rpo = None
        self.frozen_rpo_time = None
        self.health_override = {}
        self.recovery_rg_override = {}  # direction -> rg name given by switch protection
        self.staging = {}               # direction -> storage account id
        self.lifecycle = util.stable_guid(name, "lifecycle")
        self.event_correlation = util.stable_guid(name, "event")
        self.multi_vm_group = util.stable_guid(name, "mvg")
        self.management_id = util.stable_guid(name, "mgmt")
        self.deleted = False

    # ---------------------------------------------------------------- geometry
    @property
    def policy(self):
        return self.vault.policies[self.policy_name.lower()]

    def primary(self):
        return self.vm.region_a if self.direction == "AB" else self.vm.region_b

    def recovery(self):
        return self.vm.region_b if self.direction == "AB" else self.vm.region_a

    def side(self, which):
        """'A'/'B' for the item's primary or recovery side."""
        if which == "primary":
            return "A" if self.direction == "AB" else "B"
        return "B" if self.direction == "AB" else "A"

    def arm_id(self):
        p = self.primary()
        return p.container_id() + "/replicationProtectedItems/" + self.name

    def lower_id(self):
        return self.arm_id().replace("/Subscriptions/", "/subscriptions/", 1)

    def replicating(self):
        if self.job is not None and self.job.running and self.job.scenario == "UnplannedFailover":
            return False
        return self.state == "Protected" and not self.deleted

    def disk_ids_at(self, t):
        side = self.side("primary")
        return [d.id_in(side).lower() for d in self.vm.disks if d.added_at <= t]

    def target_disk_ids(self):
        """Disks of the VM as it runs in the recovery region (after a failover)."""
        side = self.side("recovery")
        return [d.id_in(side) for d in self.vm.disks]

    def tick(self, now):
        if self.ir_until is not None:
            if now >= self.ir_until and self.state == "InitialReplicationInProgress":
                self.state = "InitialReplicationRecoveryCompletionPending"
            if now >= self.ir_pending_until:
                self.state = "Protected"
                self.rp_cursor = self.ir_pending_until
                recovery_points.add_point(self, self.ir_pending_until, "CrashConsistent")
                self.ir_start = self.ir_until = self.ir_pending_until = None
        recovery_points.catch_up(self, now)

    def rpo(self, now):
        if self.state != "Protected":
            return self.frozen_rpo, self.frozen_rpo_time
        if "rpoInSeconds" in self.health_override:
            return self.health_override["rpoInSeconds"], now - 7
        wobble = int(util.jitter("%s/%d" % (self.name, int(now // 60)), 30))
        return self.rpo_base + wobble, now - 7 - util.jitter(self.name + str(int(now // 60)), 40)

    def freeze_rpo(self, now):
        self.frozen_rpo, self.frozen_rpo_time = self.rpo(now)

    # ---------------------------------------------------------------- rendering
    def current_scenario(self):
        if self.job is not None and self.job.running:
            return {"scenarioName": self.job.scenario, "jobId": self.vault.job_id(self.job.name),
                    "startTime": util.fmt_time(self.job.start)}
        return {"scenarioName": "None", "jobId": self.vault.job_id("None"), "startTime": util.SENTINEL_TIME}

    def health_errors(self):
        if self.last_tfo is None and self.state == "Protected":
            return [{"innerHealthErrors": [], "errorSource": "ReplicationUnitFailoverValidatorError",
                     "errorType": "8010", "errorLevel": "Warning", "errorCategory": "TestFailover",
                     "errorCode": "161011", "summaryMessage": "",
                     "errorMessage": "No successful test failover has been done on the virtual machine '%s'." % self.vm.name,
                     "possibleCauses": "No successful test failover has been done on the virtual machine after it was replicated.",
                     "recommendedAction": "Do a test failover on the virtual machine.",
                     "creationTimeUtc": util.fmt_time(self.protected_since + 3600),
                     "recoveryProviderErrorMessage": None, "entityId": self.vm.guid, "errorId": "6:8010",
                     "customerResolvability": "NotAllowed"}]
        return []

    def _disk_doc(self, d, now):
        ps, rs = self.side("primary"), self.side("recovery")
        failed_over = self.state.startswith("UnplannedFailover")
        rrg = self.recovery_rg_override.get(self.direction) or (self.vm.recovery_rg if rs == "B" else self.vm.rg)
        in_ir = self.state.startswith("InitialReplication")
        disk_state = "InitialReplicationPending" if in_ir else "Protected"
        pct = None
        if in_ir and self.ir_until:
            pct = max(0, min(100, int(100 * (now - self.ir_start) / max(1.0, self.ir_until - self.ir_start))))
        return {
            "diskId": d.id_in(ps).lower(),
            "recoveryResourceGroupId": "/subscriptions/%s/resourceGroups/%s" % (self.vault.sub, rrg),
            "recoveryTargetDiskId": d.id_in(rs) if failed_over else None,
            "recoveryReplicaDiskId": "" if failed_over else d.id_in(rs) + "-ASRReplica",
            "recoveryOrignalTargetDiskId": d.id_in(rs).lower() if (failed_over or rs == "A") else None,
            "recoveryReplicaDiskAccountType": d.type, "recoveryTargetDiskAccountType": d.type,
            "recoveryDiskEncryptionSetId": None, "primaryDiskEncryptionSetId": None,
            "diskName": d.name, "diskCapacityInBytes": d.size_gb * 1024 ** 3,
            "primaryStagingAzureStorageAccountId": self.staging.get(self.direction) or self.vault.cache_account(self.primary()),
            "diskType": "OperatingSystem" if d.os else "Data",
            "resyncRequired": False, "monitoringPercentageCompletion": pct,
            "monitoringJobType": "InitialReplication" if in_ir else None,
            "dataPendingInStagingStorageAccountInMB": 0.0 if not in_ir else 1024.0,
            "dataPendingAtSourceAgentInMB": 1.50390625 if self.state == "Protected" else 0.0,
            "diskState": disk_state, "allowedDiskLevelOperation": [],
            "isDiskEncrypted": False, "secretIdentifier": None, "dekKeyVaultArmId": None,
            "isDiskKeyEncrypted": False, "keyIdentifier": None, "kekKeyVaultArmId": None,
            "failoverDiskName": d.name, "tfoDiskName": d.name + "-ASRtest",
        }

    def doc(self, now):
        p, r = self.primary(), self.recovery()
        running = self.job is not None and self.job.running
        desc, active, _ = statemachine.describe(self.state)
        if self.state == "Protected" and self.tfo_state == "WaitingForCompletion":
            desc = "Cleanup test failover pending"
        tfo_desc = {"None": "None", "WaitingForCompletion": "Waiting for user input",
                    "MarkedForDeletion": "Cleaning up test environment", "InProgress": "Test failover in progress"}.get(self.tfo_state, self.tfo_state)
        vm_state, vm_desc = statemachine.VM_STATES.get(self.state, (self.state, desc))
        rpo, rpo_t = self.rpo(now)
        in_ir = self.state.startswith("InitialReplication")
        failed_over = self.state.startswith("UnplannedFailover")
        ps, rs = self.side("primary"), self.side("recovery")
        rrg = self.recovery_rg_override.get(self.direction) or (self.vm.recovery_rg if rs == "B" else self.vm.rg)
        pct = None
        if in_ir and self.ir_until:
            pct = max(0, min(100, int(100 * (now - self.ir_start) / max(1.0, self.ir_until - self.ir_start))))
        health = self.health_override.get("replicationHealth") or ("Normal" if not in_ir else "Normal")
        herrors = self.health_errors()
        psd = {
            "instanceType": "A2A",
            "fabricObjectId": self.vm.vm_id(ps).lower(),
            "initialPrimaryZone": "", "initialPrimaryFabricLocation": self.vm.region_a.location,
            "initialRecoveryZone": "", "initialRecoveryFabricLocation": self.vm.region_b.location,
            "initialPrimaryExtendedLocation": None, "initialRecoveryExtendedLocation": None,
            "multiVmGroupId": self.multi_vm_group, "multiVmGroupName": "", "multiVmGroupCreateOption": "AutoCreated",
            "managementId": self.management_id,
            "protectedDisks": None, "unprotectedDisks": None,
            "protectedManagedDisks": [self._disk_doc(d, now) for d in self.vm.disks],
            "recoveryBootDiagStorageAccountId": None,
            "primaryFabricLocation": p.location, "recoveryFabricLocation": r.location,
            "osType": self.vm.os_type, "recoveryAzureVMSize": self.vm.size, "recoveryAzureVMName": self.vm.name,
            "recoveryAzureResourceGroupId": "/subscriptions/%s/resourceGroups/%s" % (self.vault.sub, rrg),
            "recoveryCloudService": None, "recoveryAvailabilitySet": None,
            "selectedRecoveryAzureNetworkId": "/subscriptions/%s/resourcegroups/%s/providers/microsoft.network/virtualnetworks/%s-vnet-asr"
                                              % (self.vault.sub, rrg, self.vm.rg),
            "selectedTfoAzureNetworkId": None, "vmNics": [],
            "vmSyncedConfigDetails": {"tags": {}, "inputEndpoints": []},
            "monitoringPercentageCompletion": pct,
            "monitoringJobType": "InitialReplication" if in_ir else None,
            "lastHeartbeat": util.fmt_time(now - 30 if not failed_over else (self.last_failover or now)),
            "agentVersion": "9.65.7397.1", "agentExpiryDate": "9999-12-31T23:59:59.9999999Z",
            "isReplicationAgentUpdateRequired": False, "agentCertificateExpiryDate": None,
            "isReplicationAgentCertificateUpdateRequired": False,
            "recoveryFabricObjectId": self.vm.vm_id(rs).lower() if (failed_over or self.last_failover) else None,
            "vmProtectionState": vm_state, "vmProtectionStateDescription": vm_desc,
            "lifecycleId": self.lifecycle, "testFailoverRecoveryFabricObjectId": None,
            "rpoInSeconds": rpo, "lastRpoCalculatedTime": util.fmt_time(rpo_t) if rpo_t else None,
            "primaryAvailabilityZone": None, "recoveryAvailabilityZone": None,
            "primaryExtendedLocation": None, "recoveryExtendedLocation": None,
            "vmEncryptionType": "NotEncrypted", "tfoAzureVMName": self.vm.name + "-test",
            "recoveryAzureGeneration": "V2", "recoveryProximityPlacementGroupId": None,
            "autoProtectionOfDataDisk": "Disabled", "recoveryVirtualMachineScaleSetId": None,
            "recoveryCapacityReservationGroupId": None, "churnOptionSelected": "Normal",
        }
        props = {
            "friendlyName": self.vm.name,
            "protectedItemType": "",
            "protectableItemId": None,
            "recoveryServicesProviderId": p.fabric_id() + "/replicationRecoveryServicesProviders/" + p.provider_guid,
            "primaryFabricFriendlyName": p.friendly,
            "primaryFabricProvider": "AzureFabric",
            "recoveryFabricFriendlyName": r.friendly,
            "recoveryFabricId": r.fabric_id(),
            "primaryProtectionContainerFriendlyName": p.container,
            "recoveryProtectionContainerFriendlyName": r.container,
            "protectionState": self.state,
            "protectionStateDescription": desc,
            "activeLocation": active,
            "testFailoverState": self.tfo_state,
            "testFailoverStateDescription": tfo_desc,
            "switchProviderState": "None",
            "switchProviderStateDescription": None,
            "allowedOperations": statemachine.allowed_operations(self.state, self.tfo_state, running),
            "replicationHealth": health,
            "failoverHealth": "Warning" if herrors else "Normal",
            "healthErrors": herrors,
            "policyId": self.vault.policy_id(self.policy_name),
            "policyFriendlyName": self.policy_name,
            "lastSuccessfulFailoverTime": util.fmt_time(self.last_failover) if self.last_failover else None,
            "lastSuccessfulTestFailoverTime": util.fmt_time(self.last_tfo) if self.last_tfo else None,
            "currentScenario": self.current_scenario(),
            "failoverRecoveryPointId": self.failover_rp_id,
            "providerSpecificDetails": psd,
            "recoveryContainerId": r.container_id(),
            "eventCorrelationId": self.event_correlation,
        }
        return {"id": self.arm_id(), "name": self.name, "type": RPI_TYPE, "location": None, "properties": props}


class Vault:
    def __init__(self, sub, d, now, settings):
        self.sub = sub
        self.rg = d["resource_group"]
        self.name = d["name"]
        self.location = d.get("location", "eastus")
        self.settings = settings
        self.regions = {}
        for r in d["regions"]:
            self.regions[r["location"]] = Region(self, r)
        self.policies = {}
        for p in d.get("policies", []):
            pol = {"name": p["name"],
                   "recovery_point_history_minutes": int(p.get("recovery_point_history_minutes", 1440)),
                   "crash_consistent_frequency_minutes": int(p.get("crash_consistent_frequency_minutes", 5)),
                   "app_consistent_frequency_minutes": int(p.get("app_consistent_frequency_minutes", 60))}
            self.policies[p["name"].lower()] = pol
        self.mappings = []
        for m in d.get("mappings", []):
            self.mappings.append({"name": m["name"], "source": self.regions[m["source"]],
                                  "target": self.regions[m["target"]], "policy": m["policy"]})
        self.vms = []
        self.items = []
        for v in d.get("vms", []):
            vm = VM(self, v, now)
            self.vms.append(vm)
            it = Item(self, vm, v.get("item_name") or util.stable_guid(vm.name), v.get("policy", d["policies"][0]["name"]),
                      v.get("rpo_seconds", 60), now)
            horizon = now - it.policy["recovery_point_history_minutes"] * 60
            it.rp_cursor = max(it.protected_since, horizon)
            self.items.append(it)
        self.jobs = {}
        self.ops = {}

    def prefix(self, lower=False):
        return "/%s/%s/resourceGroups/%s/providers/Microsoft.RecoveryServices/vaults/%s" % (
            "subscriptions" if lower else "Subscriptions", self.sub, self.rg, self.name)

    def job_id(self, name):
        return self.prefix() + "/replicationJobs/" + name

    def policy_id(self, name):
        return self.prefix() + "/replicationPolicies/" + name

    def cache_account(self, region):
        acct = ("%sasrcache%s" % (self.name.replace("-", "")[:8], util.stable_guid(self.name, region.location)[:6]))[:24]
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s" % (
            self.sub, self.rg, acct)

    def region_by_fabric(self, fabric):
        for r in self.regions.values():
            if util.ieq(r.fabric, fabric):
                return r
        return None

    def find_item(self, fabric, container, name):
        for it in self.items:
            p = it.primary()
            if not it.deleted and util.ieq(p.fabric, fabric) and util.ieq(p.container, container) and util.ieq(it.name, name):
                return it
        return None

    def vault_doc(self):
        return {"location": self.location, "name": self.name, "etag": "W/\"datetime'2025-01-01T00%3A00%3A00.0000000Z'\"",
                "tags": {}, "identity": {"type": "None"},
                "properties": {"provisioningState": "Succeeded", "privateEndpointStateForBackup": "None",
                               "privateEndpointStateForSiteRecovery": "None", "publicNetworkAccess": "Enabled",
                               "redundancySettings": {"standardTierStorageRedundancy": "GeoRedundant",
                                                      "crossRegionRestore": "Disabled"},
                               "secureScore": "None", "bcdrSecurityLevel": "Poor"},
                "id": self.prefix(lower=True).replace("/vaults/", "/vaults/"),
                "type": "Microsoft.RecoveryServices/vaults", "sku": {"name": "RS0", "tier": "Standard"}}

    def policy_doc(self, name):
        p = self.policies[name.lower()]
        return {"id": self.policy_id(p["name"]), "name": p["name"],
                "type": "Microsoft.RecoveryServices/vaults/replicationPolicies", "location": None,
                "properties": {"friendlyName": p["name"], "providerSpecificDetails": {
                    "instanceType": "A2A", "recoveryPointThresholdInMinutes": 0,
                    "recoveryPointHistory": p["recovery_point_history_minutes"],
                    "appConsistentFrequencyInMinutes": p["app_consistent_frequency_minutes"],
                    "multiVmSyncStatus": "Enabled",
                    "crashConsistentFrequencyInMinutes": p["crash_consistent_frequency_minutes"]}}}

    def mapping_doc(self, m):
        src, tgt = m["source"], m["target"]
        return {"id": src.container_id() + "/replicationProtectionContainerMappings/" + m["name"],
                "name": m["name"],
                "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectionContainerMappings",
                "location": None,
                "properties": {"targetProtectionContainerId": tgt.container_id(),
                               "targetProtectionContainerFriendlyName": tgt.container,
                               "providerSpecificDetails": {"instanceType": "A2A", "agentAutoUpdateStatus": "Disabled",
                                                           "automationAccountArmId": None,
                                                           "automationAccountAuthenticationType": "RunAsAccount",
                                                           "scheduleName": None, "jobScheduleName": None},
                               "health": "Normal", "healthErrorDetails": [],
                               "policyId": self.policy_id(m["policy"]), "state": "Paired",
                               "sourceProtectionContainerFriendlyName": src.container,
                               "sourceFabricFriendlyName": src.friendly, "targetFabricFriendlyName": tgt.friendly,
                               "policyFriendlyName": m["policy"]}}
