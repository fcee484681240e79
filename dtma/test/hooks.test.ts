import { DockerEngine } from "../src/docker/engine";
import { NETWORK, SOCKET, cleanup, exec } from "./helpers";

// Root hooks: this run's tool network exists once before any DTMA starts (several DTMAs in one
// process would otherwise race to create it), and everything the run created goes at the end.

before(async () => {
  const docker = new DockerEngine(SOCKET);
  try {
    if (!(await docker.networkExists(NETWORK)))
      await docker.createNetwork(NETWORK, { "agentopia.test": "dtma" });
  } finally {
    docker.close();
  }
});

after(async () => {
  await cleanup();
  await exec("docker", ["network", "rm", NETWORK]).catch(() => undefined);
});
