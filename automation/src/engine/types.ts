import type { ToolboxTokens } from "../secrets/tokenCipher";

/** Stack config the account program reads (namespace `agentopia-toolboxes`), minus secrets. */
export interface ToolboxStackConfig {
  accountId: string;
  target: "local" | "digitalocean";
  region?: string;
  size?: string;
  platformStack?: string;
  agentopiaApiBaseUrl: string;
  controlPlaneCidrs: string[];
  dtmaImage?: string;
  backendImage?: string;
  tokenGeneration: number;
}

export interface StackRequest {
  /** `acct-<accountId>` */
  stackName: string;
  config: ToolboxStackConfig;
}

/** What the account program exports, secrets included (they never leave the service unencrypted). */
export interface ToolboxOutputs extends ToolboxTokens {
  dropletId?: string;
  /** `tbx-<accountId>`; none on the local target. */
  dropletName?: string;
  dropletUrn?: string;
  ipv4?: string;
  ipv6?: string;
  backendUrl?: string;
  /** The CA that signed the backend's certificate (PEM), its SHA-256 fingerprint, the certificate's expiry: clients pin the CA. */
  backendCaCertPem?: string;
  backendCaSha256?: string;
  backendCertNotAfter?: string;
}

export interface DriftReport {
  /** True when the preview after the refresh proposes any change. */
  drifted: boolean;
  /** Resource count per operation kind from the preview, e.g. {same: 9, update: 1}. */
  changeSummary: Record<string, number>;
}

/** A stack in the state backend, as the engine lists it. */
export interface StackSummary {
  /** As the backend names it (`acct-<id>`, or `org/project/stack` on Pulumi Cloud). */
  name: string;
  lastUpdate?: string;
  resourceCount?: number;
}

/** A stack's outputs by name, secrets in plain (they never leave the service unencrypted). */
export type StackOutputValues = Record<string, unknown>;

export interface EngineEvent {
  type: string;
  message?: string;
  data?: unknown;
}

export type OnEngineEvent = (event: EngineEvent) => void;

/**
 * How a failure should be treated: `transient` is retried with backoff, `permanent` fails the
 * operation at once, `locked` means the stack is locked by someone else (the worker then clears
 * a lock it knows to be stale, or fails).
 */
export type EngineErrorKind = "transient" | "permanent" | "locked";

export class EngineError extends Error {
  constructor(
    message: string,
    readonly kind: EngineErrorKind,
  ) {
    super(message);
    this.name = "EngineError";
  }
}

/**
 * The seam between the service and Pulumi. The production implementation is the Automation API
 * (`automationEngine.ts`); tests use `TestEngine`, the only fake in this package.
 */
export interface ToolboxEngine {
  /** Creates or updates the stack and returns its outputs. */
  up(req: StackRequest, onEvent: OnEngineEvent): Promise<ToolboxOutputs>;
  /** Destroys the stack's resources, then removes the stack and its work directory. */
  destroy(req: StackRequest, onEvent: OnEngineEvent): Promise<void>;
  /** Drift check: refresh the state from the provider, then preview against the program. */
  refresh(req: StackRequest, onEvent: OnEngineEvent): Promise<DriftReport>;
  /**
   * Called before re-running an operation whose previous attempt died with its worker: cancels
   * the stale lock and clears pending operations so the stack can be updated again.
   */
  recover(req: StackRequest, onEvent: OnEngineEvent): Promise<void>;
  /** Every stack of the project in the state backend (reconciliation). */
  listStacks(): Promise<StackSummary[]>;
  /** A stack's outputs (the platform's profile, an operator stack's canaries); undefined: no such stack. */
  stackOutputs(stackName: string): Promise<StackOutputValues | undefined>;
  /**
   * Destroys a stack known only by its name (an orphan: no record, so no request to build its
   * config from), then removes it and its work directory.
   */
  destroyStack(stackName: string, onEvent: OnEngineEvent): Promise<void>;
}

export { stackNameFor } from "@agentopia-toolboxes/contract";
