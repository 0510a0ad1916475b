// The test page's client: the npm package's own WHIPClient and WHEPClient, unchanged.
import { WHIPClient } from 'whip-whep/whip.js';
import { WHEPClient } from 'whip-whep/whep.js';

window.WHIPClient = WHIPClient;
window.WHEPClient = WHEPClient;
