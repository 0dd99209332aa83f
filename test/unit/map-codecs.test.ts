// The TypeScript codecs must agree with the structs the kernel programs were
// compiled with: compare each declared layout with the object's BTF.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  configCodec,
  strictCodec,
  decodeAddr16,
  encodeAddr16,
  enrollmentCodec,
  origDstCodec,
  tupleKeyCodec,
  vipKeyCodec,
  vipValueCodec,
  type StructCodec,
} from '../../src/datapath/map-codecs';
import { addon, bpfObjectPath } from '../../src/native/bpf-addon';

const codecs: StructCodec<never>[] = [enrollmentCodec, vipKeyCodec, vipValueCodec, origDstCodec, tupleKeyCodec, configCodec, strictCodec] as never;

describe('map codecs', () => {
  for (const codec of codecs) {
    it(`${codec.struct} matches the compiled object's BTF`, () => {
      const btf = addon().btfStructLayout(bpfObjectPath, codec.struct);
      assert.equal(codec.size, btf.size, 'struct size');
      assert.deepEqual(codec.fields, btf.members);
    });
  }

  it('round-trips every struct', () => {
    const tuple = { srcAddress: '10.244.1.5', dstAddress: '10.244.1.1', srcPort: 40000, dstPort: 15001 };
    assert.deepEqual(tupleKeyCodec.decode(tupleKeyCodec.encode(tuple)), tuple);
    const orig = { address: '10.96.0.10', port: 80, serviceId: 7, netnsCookie: 123456789012345n };
    assert.deepEqual(origDstCodec.decode(origDstCodec.encode(orig)), orig);
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
});
