// Map capacity as a limit of the configuration, not of the kernel write: a
// Service (or a meshed workload's own address) whose VIP entries do not fit
// in what is left of sluice_vips is refused whole by the xDS source, NACKed
// by name with the map, never half installed.
import { vipEntries, workloadVipEntries } from '../datapath/desired-state';
import type { MapCapacity } from '../datapath/map-capacity';
import type { Service, Workload } from '../model/resources';
import { serviceCodec, workloadCodec } from '../xds/resource-types';
import type { XdsSource } from './xds-source';

/**
 * Makes `xds` admit each Service and Workload against `capacity` (entries
 * counted as desired-state.ts would write them) and release what it holds
 * when one is removed. Other types are not counted.
 */
export function admitByVipCapacity(xds: XdsSource, capacity: MapCapacity): void {
  xds.admit = (typeUrl, name, resource) => {
    if (typeUrl === serviceCodec.typeUrl) return capacity.admit(`service ${name}`, vipEntries(resource as Service, 0).length);
    if (typeUrl === workloadCodec.typeUrl) return capacity.admit(`workload ${name}`, workloadVipEntries(resource as Workload).length);
    return undefined;
  };
  xds.release = (typeUrl, name) => {
    if (typeUrl === serviceCodec.typeUrl) capacity.release(`service ${name}`);
    if (typeUrl === workloadCodec.typeUrl) capacity.release(`workload ${name}`);
  };
}
