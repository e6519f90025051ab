// WHEP playback (draft-ietf-wish-whep): an SDP offer POSTed to the resource, the answer back, the session
// ended with a DELETE on the Location. Used by the CSU dashboard for agents' feeds and CCTV cameras alike.
"use strict";
window.TemoinWhep = (() => {
  async function gathered(pc) {
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, 2000);  // host candidates are enough on a LAN; never wait long for slow servers
    });
  }

  // Play `url` into `video`. Returns a player: {stats, error, close()}; stats.framesDecoded grows while pictures
  // arrive, stats.lastProgress is when it last grew (Date.now()), so a frozen picture is noticed.
  async function play(url, video, {csrf, audio = true} = {}) {
    const player = {url, resource: null, error: null, closed: false, close: () => {},
                    stats: {framesDecoded: 0, lastProgress: null, audioPackets: 0, frameWidth: 0}};
    const pc = player.pc = new RTCPeerConnection();
    pc.addTransceiver("video", {direction: "recvonly"});
    if (audio) pc.addTransceiver("audio", {direction: "recvonly"});
    const stream = new MediaStream();
    video.srcObject = stream;
    pc.ontrack = (e) => { stream.addTrack(e.track); video.play().catch(() => {}); };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const r = await fetch(url, {method: "POST", body: pc.localDescription.sdp,
                                headers: {"Content-Type": "application/sdp", "X-CSRF-Token": csrf}});
    if (r.status !== 201) {
      const detail = await r.json().then((j) => j.detail).catch(() => r.statusText);
      pc.close();
      player.error = `${r.status} ${detail}`;
      player.closed = true;
      return player;
    }
    player.resource = r.headers.get("Location");
    await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
    player.timer = setInterval(async () => {
      if (player.closed) return;
      const report = await pc.getStats().catch(() => null);
      if (!report) return;
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") {
          if ((s.framesDecoded || 0) > player.stats.framesDecoded) player.stats.lastProgress = Date.now();
          player.stats.framesDecoded = s.framesDecoded || 0;
          player.stats.frameWidth = s.frameWidth || 0;
        } else if (s.kind === "audio") {
          player.stats.audioPackets = s.packetsReceived || 0;
        }
      });
    }, 500);
    player.close = (keepalive = false) => {
      if (player.closed) return;
      player.closed = true;
      clearInterval(player.timer);
      pc.close();
      if (player.resource) {
        fetch(player.resource, {method: "DELETE", headers: {"X-CSRF-Token": csrf}, keepalive}).catch(() => {});
      }
    };
    return player;
  }

  return {play};
})();
