// The active speaker observer (Jitsi's dominant speaker identification in the worker)
// keeps a muted dominant speaker: a paused producer sends nothing, and a challenger
// must out-score its last levels by the algorithm's margins (measured: a participant
// who unmuted after the dominant one muted was not made dominant in 15 s in 1 of 4
// runs, and with a steady tone in 3 of 3). Jitsi does not let a muted participant be
// dominant; so here a producer leaves the observer while paused and comes back when
// resumed. Audio level observers are left as mediasoup has them.

const followed = new WeakMap(); // observer -> Map(producerId -> detach)

/** Add `producer` to `observer`; an active speaker observer follows its pauses. */
export async function addSpeaker(observer, producer) {
  if (observer.type !== 'activespeaker') {
    await observer.addProducer({ producerId: producer.id });
    return;
  }
  let producers = followed.get(observer);
  if (!producers) {
    producers = new Map();
    followed.set(observer, producers);
  }
  if (producers.has(producer.id)) return;
  const leave = () => { observer.removeProducer({ producerId: producer.id }).catch(() => {}); };
  const come = () => { if (!observer.closed) observer.addProducer({ producerId: producer.id }).catch(() => {}); };
  const detach = () => {
    producer.observer.off('pause', leave);
    producer.observer.off('resume', come);
    producers.delete(producer.id);
  };
  producer.observer.on('pause', leave);
  producer.observer.on('resume', come);
  producer.observer.once('close', detach);
  observer.observer.once('close', detach);
  producers.set(producer.id, detach);
  if (!producer.paused) await observer.addProducer({ producerId: producer.id });
}

/** Remove it (and stop following it). */
export async function removeSpeaker(observer, producerId) {
  followed.get(observer)?.get(producerId)?.();
  await observer.removeProducer({ producerId });
}
