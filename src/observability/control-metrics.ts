// Prometheus metrics of the control plane (sluice-control's /metrics):
// connected agents, pushes and ACK/NACK received by type, certificate
// issuance by result, translation problems, process and build info.
import * as client from 'prom-client';
import { registerBuildInfo, registerProcessMetrics, sourcedCounter, sourcedGauge, type LabelValues } from './metric-helpers';

export interface ControlMetricSources {
  version: string;
  /** Agents with an open xDS stream now, by node. */
  streams(): { node: string }[];
  /** Per resource type URL: responses pushed, ACKs and NACKs received. */
  xdsByType(): Record<string, { pushes: number; acks: number; nacks: number }>;
  /** Certificates issued, and refused by reason; undefined when the control plane issues none. */
  issuance(): { issued: number; refused: Record<string, number> } | undefined;
  /** Objects rejected by the last translation (each is one problem). */
  translationProblems(): number;
  /** Translations (manifest changes applied) since start. */
  publishes(): number;
  /** The configuration version served. */
  configVersion(): string;
}

const shortType = (t: string) => t.replace('type.googleapis.com/', '');

/** The control plane's registry; `promtool check metrics` is clean on it. */
export function createControlRegistry(sources: ControlMetricSources): client.Registry {
  const registry = new client.Registry();
  registerProcessMetrics(registry);
  registerBuildInfo(registry, 'sluice_control_build_info', sources.version);
  sourcedGauge(registry, 'sluice_control_connected_agents', 'Node agents with an open xDS stream now.', [], () => [[{}, sources.streams().length]]);
  sourcedCounter(registry, 'sluice_control_xds_pushes_total', 'Delta xDS responses sent to agents, by resource type.', ['type'], () =>
    Object.entries(sources.xdsByType()).map(([t, c]) => [{ type: shortType(t) }, c.pushes]),
  );
  sourcedCounter(registry, 'sluice_control_xds_responses_total', 'ACKs and NACKs received from agents, by resource type and result (ack, nack).', ['type', 'result'], () =>
    Object.entries(sources.xdsByType()).flatMap(([t, c]) => [
      [{ type: shortType(t), result: 'ack' }, c.acks] as [LabelValues, number],
      [{ type: shortType(t), result: 'nack' }, c.nacks] as [LabelValues, number],
    ]),
  );
  sourcedCounter(registry, 'sluice_control_certificate_issuances_total', 'Certificate requests answered, by result (issued, or the refusal: UNAUTHENTICATED, NOT_AUTHORIZED, BAD_CSR, ...).', ['result'], () => {
    const i = sources.issuance();
    if (!i) return [];
    return [[{ result: 'issued' }, i.issued] as [LabelValues, number], ...Object.entries(i.refused).map(([k, v]) => [{ result: k }, v] as [LabelValues, number])];
  });
  sourcedGauge(registry, 'sluice_control_translation_problems', 'Objects the last translation of the manifests rejected (see sluicectl --control status).', [], () => [[{}, sources.translationProblems()]]);
  sourcedCounter(registry, 'sluice_control_publishes_total', 'Translations of the manifests published to agents since start.', [], () => [[{}, sources.publishes()]]);
  sourcedGauge(registry, 'sluice_control_config_info', 'Always 1; the label is the configuration version served.', ['version'], () => [[{ version: sources.configVersion() }, 1]]);
  return registry;
}
