/**
 * The toolbox contract: one definition of what the program, the components, cloud-init, the
 * policy pack, the automation service and the DTMA must agree on. Nothing restates these.
 */
export * from "./account";
export * from "./images";
export * from "./labels";
export * from "./network";
export * from "./placement";
export * from "./status";
