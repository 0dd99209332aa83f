// Writes deploy/base/crds/*.yaml from src/control/policy-crds.ts (build first:
// npx tsc -p tsconfig.json). test/unit/crd-schemas.test.ts fails when the
// files differ from what this writes.
const fs = require('node:fs');
const path = require('node:path');
const { stringify } = require('yaml');
const { POLICY_CRDS, crdFileText } = require('../dist/src/control/policy-crds');

const dir = path.join(__dirname, '..', 'deploy', 'base', 'crds');
fs.mkdirSync(dir, { recursive: true });
for (const [file, object] of Object.entries(POLICY_CRDS)) {
  fs.writeFileSync(path.join(dir, file), crdFileText(object, (o) => stringify(o, { lineWidth: 0 })));
  console.log(path.join('deploy', 'base', 'crds', file));
}
