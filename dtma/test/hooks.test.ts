import { cleanup } from "./helpers";

// Root hook: everything the run created (containers, the tools' networks) goes at the end.
after(() => cleanup());
