/** The operator program: `pulumi up -s local|dev|prod`. See program/operator.ts. */
import { operatorProgram } from "./program/operator";

const outputs = operatorProgram();

export const environment = outputs.environment;
export const vpcIds = outputs.vpcIds;
export const projectId = outputs.projectId;
export const sshKeyFingerprint = outputs.sshKeyFingerprint;
export const sshPublicKey = outputs.sshPublicKey;
export const environmentTag = outputs.environmentTag;
export const dnsZone = outputs.dnsZone;
export const toolboxes = outputs.toolboxes;
