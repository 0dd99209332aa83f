// The TypeScript codecs must agree with the structs the kernel programs were
// compiled with: each codec's field table (the one encode and decode walk) is
// compared with the object's BTF, and the counter names and flag values with
// bpf/include/sluice_maps.h (the enum is not in the object's BTF: no program
// variable has its type).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  STRICT_F_COUNT_ONLY,
  VIP_F_NO_ENDPOINTS,
  configCodec,
  counterNames,
  strictCodec,
  inboundCodec,
  ipv4KeyCodec,
  decodeAddr16,
  encodeAddr16,
  enrollmentCodec,
  originalDestinationCodec,
  tupleKeyCodec,
  vipKeyCodec,
  vipValueCodec,
  type StructCodec,
} from '../../src/datapath/map-codecs';
import { addon, bpfObjectPath, projectRoot } from '../../src/native/bpf-addon';

const codecs: StructCodec<never>[] = [enrollmentCodec, vipKeyCodec, vipValueCodec, originalDestinationCodec, tupleKeyCodec, configCodec, strictCodec, inboundCodec] as never;

const header = fs.readFileSync(path.join(projectRoot, 'bpf', 'include', 'sluice_maps.h'), 'utf8');

/** The enumerators of `enum <name>` in the header, in order, with their values. */
function headerEnum(name: string): [string, number][] {
  const body = new RegExp(`enum ${name}\\s*{([^}]*)}`).exec(header);
  assert.ok(body, `enum ${name} in sluice_maps.h`);
  return [...body[1].matchAll(/(\w+)\s*=\s*(\d+)/g)].map((m) => [m[1], Number(m[2])]);
}

/** A deterministic byte pattern, so a failing case can be replayed. */
function patternBytes(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >> 16;
  }
  return b;
}

describe('map codecs', () => {
  for (const codec of codecs) {
    it(`${codec.struct}: the field table encode/decode use matches the compiled object's BTF (names, offsets, sizes)`, () => {
      const btf = addon().btfStructLayout(bpfObjectPath, codec.struct);
      assert.equal(codec.size, btf.size, 'struct size');
      assert.deepEqual(codec.fields, btf.members);
    });

    it(`${codec.struct}: decode then encode gives back the bytes of every non-pad field`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const bytes = patternBytes(codec.size, seed);
        for (const f of codec.fields) if (f.name === 'pad') bytes.fill(0, f.offset, f.offset + f.size);
        assert.deepEqual(codec.encode(codec.decode(bytes)), bytes, `seed ${seed}`);
      }
    });
  }

  it('every struct of sluice_maps.h has a codec', () => {
    const structs = [...header.matchAll(/^struct (sluice_\w+)\s*{/gm)].map((m) => m[1]);
    assert.deepEqual(structs.sort(), codecs.map((c) => c.struct).sort());
  });

  it('counter names follow enum sluice_counter', () => {
    const enumerators = headerEnum('sluice_counter');
    const max = enumerators.find(([n]) => n === 'SLUICE_CTR_MAX');
    assert.deepEqual(
      enumerators.filter(([n]) => n !== 'SLUICE_CTR_MAX'),
      counterNames.map((name, i) => [`SLUICE_CTR_${name.toUpperCase()}`, i]),
    );
    assert.deepEqual(max, ['SLUICE_CTR_MAX', counterNames.length]);
  });

  it('flag values follow the header', () => {
    const define = (name: string) => Number(new RegExp(`#define ${name}\\s+(\\d+)`).exec(header)?.[1]);
    assert.equal(VIP_F_NO_ENDPOINTS, define('SLUICE_VIP_F_NO_ENDPOINTS'));
    assert.equal(STRICT_F_COUNT_ONLY, define('SLUICE_STRICT_F_COUNT_ONLY'));
  });

  it('round-trips every struct', () => {
    const tuple = { srcAddress: '10.244.1.5', dstAddress: '10.244.1.1', srcPort: 40000, dstPort: 15001 };
    assert.deepEqual(tupleKeyCodec.decode(tupleKeyCodec.encode(tuple)), tuple);
    const orig = { address: '10.96.0.10', port: 80, serviceId: 7, netnsCookie: 123456789012345n };
    assert.deepEqual(originalDestinationCodec.decode(originalDestinationCodec.encode(orig)), orig);
    const vip = { address: '10.96.0.10', port: 443, proto: 6 };
    assert.deepEqual(vipKeyCodec.decode(vipKeyCodec.encode(vip)), vip);
    assert.deepEqual(configCodec.decode(configCodec.encode({ proxyAddress: '10.244.1.1', proxyPort: 15001 })), { proxyAddress: '10.244.1.1', proxyPort: 15001 });
  });

  it('stores ports in network byte order and IPv4 as IPv4-mapped', () => {
    const b = vipKeyCodec.encode({ address: '10.96.0.10', port: 80, proto: 6 });
    assert.equal(b.subarray(0, 16).toString('hex'), '00000000000000000000ffff0a60000a');
    assert.equal(b.subarray(16, 18).toString('hex'), '0050');
  });

  it('encodes IPv6 addresses', () => {
    const b = Buffer.alloc(16);
    encodeAddr16('fd00::1', b, 0);
    assert.equal(b.toString('hex'), 'fd000000000000000000000000000001');
    assert.equal(decodeAddr16(b, 0), 'fd00::1');
    assert.throws(() => encodeAddr16('not-an-ip', b, 0), /not an IP address/);
  });

  it('refuses a non-IPv4 address in a 4-byte field, naming the field', () => {
    assert.throws(() => configCodec.encode({ proxyAddress: 'fd00::1', proxyPort: 1 }), /sluice_config\.proxy_addr4 must be IPv4/);
    assert.throws(() => strictCodec.encode({ allowedAddress: 'x', flags: 0 }), /sluice_strict\.allowed_saddr4 must be IPv4/);
  });

  it('inbound entries: the pod address as the key in network order, the listener port in network order', () => {
    assert.equal(ipv4KeyCodec.encode('10.244.1.7').toString('hex'), '0af40107');
    assert.equal(ipv4KeyCodec.decode(Buffer.from('0af40107', 'hex')), '10.244.1.7');
    assert.throws(() => ipv4KeyCodec.encode('fd00::1'), /map key must be IPv4/);
    const v = inboundCodec.encode({ allowedAddress: '10.244.1.1', listenPort: 15006 });
    assert.equal(v.toString('hex'), '0af40101' + '3a9e' + '0000');
    assert.deepEqual(inboundCodec.decode(v), { allowedAddress: '10.244.1.1', listenPort: 15006 });
  });
});
