// Reminders (待办提醒): when a case's reminder comes due, the agent who set it sees a notice
// that stays until dismissed, with the case one click (or Enter) away, and hears a short tone.
import { h } from './util.js';
import { t } from './i18n.js';

function tone() {
  try {
    const audio = new AudioContext();
    const beep = audio.createOscillator();
    beep.frequency.value = 880;
    beep.connect(audio.destination);
    beep.start();
    beep.stop(audio.currentTime + 0.2);
  } catch { /* no audio on this device: the notice is enough */ }
}

function tray() {
  let root = document.querySelector('.reminders');
  if (!root) {
    root = h('div.reminders', { role: 'region', 'aria-live': 'assertive', 'aria-label': t('reminder.region') });
    document.body.append(root);
  }
  return root;
}

/** Show a due reminder if it is for this signed-in agent (others see it on the case). */
export function showReminder(me, data, openCase) {
  if (me.role !== 'agent' || data.agent !== me.subject) return;
  const notice = h('div.reminder', { role: 'alert', dataset: { caseId: data.case_id } },
    h('b', {}, t('reminder.due', { case_id: data.case_id })),
    data.note ? h('span', {}, data.note) : null,
    h('button.primary', { type: 'button', onclick: () => { notice.remove(); openCase(data.case_id); } }, t('reminder.open')),
    h('button.secondary', { type: 'button', onclick: () => notice.remove() }, t('reminder.dismiss')));
  tray().append(notice);
  notice.querySelector('button').focus();
  tone();
}
