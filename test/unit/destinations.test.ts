// Which addresses an outbound webhook may never go to: loopback, private, link-local (cloud metadata at
// 169.254.169.254 among them), shared, reserved and multicast, in IPv4 and IPv6, mapped forms included.
import { describe, expect, it } from "vitest";
import { isBlockedAddress } from "../../src/integrations/destinations.ts";

describe("webhook destinations", () => {
  it("blocks every special-purpose address and lets public ones through", () => {
    const blocked = [
      "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
      "100.64.0.1", "198.18.0.1", "224.0.0.1", "255.255.255.255", "192.0.2.10",
      "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
      "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe", "2002:0a00:0001::1", "not-an-ip",
    ];
    const allowed = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"];
    for (const ip of blocked) expect(isBlockedAddress(ip), ip).toBe(true);
    for (const ip of allowed) expect(isBlockedAddress(ip), ip).toBe(false);
  });
});
