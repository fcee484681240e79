import assert from "node:assert/strict";
import type { ToolboxRow } from "../src/db/rows";
import { toolboxView } from "../src/routes/views";

describe("the toolbox view", () => {
  const row = (outputs: ToolboxRow["outputs_json"]) =>
    ({
      account_id: "3f1c2e8a-5b7d-4c19-9a2e-1d0b6c4f7a21",
      status: "active",
      last_heartbeat_at: new Date(),
      backend_url: "https://203.0.113.10:3000",
      outputs_json: outputs,
    }) as unknown as ToolboxRow;

  it("tells the control plane how to verify the backend: the CA to pin and the certificate's expiry", () => {
    const view = toolboxView(
      row({
        backendUrl: "https://203.0.113.10:3000",
        backendCaCertPem: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
        backendCaSha256: "AB:CD",
        backendCertNotAfter: "2027-03-04T00:00:00Z",
      }),
      180,
    );
    assert.equal(view.backend_url, "https://203.0.113.10:3000");
    assert.match(view.backend_ca_certificate!, /BEGIN CERTIFICATE/);
    assert.equal(view.backend_ca_sha256, "AB:CD");
    assert.equal(view.backend_certificate_expires_at, "2027-03-04T00:00:00Z");
  });

  it("has none of them on the local target (plain HTTP on loopback) or before a provision", () => {
    for (const outputs of [{ backendUrl: "http://127.0.0.1:32768" }, null]) {
      const view = toolboxView(row(outputs), 180);
      assert.equal(view.backend_ca_certificate, null);
      assert.equal(view.backend_ca_sha256, null);
      assert.equal(view.backend_certificate_expires_at, null);
    }
  });
});
