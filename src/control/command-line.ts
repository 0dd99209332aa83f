// sluice-control's command line: serve (the default), render and ca, with the
// control plane's flags; help, version and completion come with it.
import { type ProgramDecl } from '../command-line';
import { caFlags, controlFlags, renderFlags } from '../config/control-config';

export const controlProgram: ProgramDecl = {
  name: 'sluice-control',
  summary: 'the sluice control plane: serves workloads, services and policies to node agents over Delta ADS',
  flags: [],
  commands: [
    {
      name: 'serve',
      summary: 'serve the cluster\'s objects to agents over xDS, following them as they change',
      description:
        'Exactly one source: --manifests PATH (files), --kubeconfig PATH or --in-cluster (the Kubernetes API, watched).\n' +
        'The admin endpoint on --admin-socket serves /status, /resources and /agents (read them with "sluicectl --control PATH").\n' +
        'Every flag --some-flag can also be given as the variable SLUICE_CONTROL_SOME_FLAG; flags win.',
      flags: controlFlags,
    },
    {
      name: 'render',
      summary: 'print, as JSON, the resources the manifests translate to, and the objects rejected',
      description: 'Exits 1 when any object is rejected (the errors are listed in the output).',
      flags: renderFlags,
    },
    {
      name: 'ca',
      summary: 'create a mesh root (root-cert.pem, root-key.pem) in --ca-dir, to keep in a Secret',
      description:
        'Refuses to overwrite a root that is there. Prints the kubectl command that puts the root and its key into the\n' +
        'sluice-ca Secret, which sluice-control then uses rather than generate a root of its own on first start\n' +
        '(it publishes the root alone in the sluice-ca-root ConfigMap for agents).',
      flags: caFlags,
    },
  ],
  defaultCommand: 'serve',
  footer:
    'Every flag --some-flag can also be given as SLUICE_CONTROL_SOME_FLAG (flags win).\n' +
    'Exit codes: 0 ok, 1 failure (render: an object was rejected; serve: could not listen or run),\n' +
    '2 invalid command line, configuration or manifests.',
};
