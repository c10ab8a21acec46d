import type { SimulatorStore } from "./store";

export interface Env {
  /** The single state object, addressed as idFromName("sim"). */
  STORE: DurableObjectNamespace<SimulatorStore>;
  /** Real time = simulated duration x this ("0": tasks finish at once). Default 1. */
  SIM_TIME_SCALE?: string;
  /** Extra accepted API keys, comma-separated (any "sk-sim-..." key is accepted anyway). */
  SIM_API_KEYS?: string;
}
