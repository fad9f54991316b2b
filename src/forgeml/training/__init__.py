"""The Lightning side of ForgeML: LightningModules, DataModules, callbacks and the fit loop. Only
the train stages import it, so evaluate, report and the serving commands start without Lightning."""
