/** The operator program: `pulumi up -s local|dev|prod`. See program/operator.ts. */
import { operatorProgram } from "./program/operator";

// Every property becomes a stack output; the account stacks read the platform's.
export = operatorProgram();
