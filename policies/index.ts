/**
 * The pack's entry file, the only place a PolicyPack is constructed: the constructor starts the
 * analyzer's gRPC server, so modules that tests import must never do it.
 */
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./all";

new PolicyPack("agentopia-toolboxes", {
  description: "Security and cost guardrails for Agentopia toolboxes on DigitalOcean.",
  policies,
});
