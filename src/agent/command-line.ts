// sluice-agent's command line: one command (run, the default) with the
// agent's flags; help, version and completion come with it.
import { type ProgramDecl } from '../command-line';
import { agentFlags } from '../config/agent-config';

export const agentProgram: ProgramDecl = {
  name: 'sluice-agent',
  summary: 'the per-node agent of the sluice mesh (eBPF capture, node proxy, tunnels, xDS client)',
  flags: [],
  commands: [
    {
      name: 'run',
      summary: 'run the agent until SIGTERM or SIGINT',
      description:
        'Needs --node-name, --bpffs, --cgroup, --proxy-address and exactly one of --control-plane or --snapshot.\n' +
        'Every flag --some-flag can also be given as the variable SLUICE_SOME_FLAG; flags win.',
      flags: agentFlags,
    },
  ],
  defaultCommand: 'run',
  footer:
    'Every flag --some-flag can also be given as SLUICE_SOME_FLAG (flags win).\n' +
    'Exit codes: 0 stopped cleanly, 1 failed (to start or while running), 2 invalid command line or configuration.',
};
