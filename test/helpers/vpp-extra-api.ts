/**
 * A second, plain connection to a VPP API socket (the emulator or a real VPP) for read-only
 * requests the back end never sends: an interface's VRF (sw_interface_get_table) and the unnumbered
 * interfaces (ip_unnumbered_dump). For tests only.
 */
import { VppClient } from '../../src/vpp/client.ts';

export class ExtraApi {
  private readonly client: VppClient;

  private constructor(client: VppClient) {
    this.client = client;
  }

  /** Connects (sockclnt_create); the requests below must be in VPP's message table. */
  static async open(socket: string): Promise<ExtraApi> {
    const client = new VppClient({ socket, reconnect: false, healthCheckMs: 0, requestTimeoutMs: 5000 });
    await client.connect();
    return new ExtraApi(client);
  }

  /** The VRF (table id) of the interface's IPv4 or IPv6 table. */
  async table(swIfIndex: number, ipv6: boolean): Promise<number> {
    const r = await this.client.request('sw_interface_get_table', { sw_if_index: swIfIndex, is_ipv6: ipv6 });
    return r.vrf_id;
  }

  /** The unnumbered interfaces: sw_if_index → the sw_if_index of the interface lending its address. */
  async unnumbered(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const d of await this.client.dump('ip_unnumbered_dump', { sw_if_index: 0xffffffff })) out.set(d.sw_if_index, d.ip_sw_if_index);
    return out;
  }

  close(): void {
    void this.client.close();
  }
}
